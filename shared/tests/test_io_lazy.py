"""medshared.io imports without its optional extras and names the extra when one is needed."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_import_without_extras_and_clear_messages(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        for name in ("torch", "safetensors", "PIL", "pydicom", "trx"):
            sys.modules[name] = None  # makes "import name" raise ImportError
        import numpy as np
        import medshared.io as io
        from medshared.errors import MissingExtraError
        io.write_nifti({str(tmp_path / "v.nii.gz")!r}, np.zeros((2, 2, 2), np.uint8))
        assert io.read_nifti({str(tmp_path / "v.nii.gz")!r}).data.shape == (2, 2, 2)
        calls = [
            ("png", lambda: io.write_png({str(tmp_path / "a.png")!r}, np.zeros((2, 2), np.uint8))),
            ("dicom", lambda: io.read_dicom_series({str(tmp_path)!r})),
            ("torch", lambda: io.load_checkpoint({str(tmp_path / "m.safetensors")!r})),
            ("trx", lambda: io.write_streamlines({str(tmp_path / "s.trx")!r}, [np.zeros((2, 3))],
                                                 reference={str(tmp_path / "v.nii.gz")!r})),
        ]
        for extra, call in calls:
            try:
                call()
            except MissingExtraError as exc:
                assert f"medshared[{{extra}}]" in str(exc), exc
            else:
                raise AssertionError(extra)
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
