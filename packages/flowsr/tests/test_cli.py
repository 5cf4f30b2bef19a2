"""CLI end to end on small data: phantom -> downsample -> wmf -> train -> predict; errors."""

from __future__ import annotations

import h5py
import numpy as np

from flowsr.cli import main

SMALL = ["--shape-x", "64", "--shape-y", "64", "--shape-z", "32", "--voxel-mm", "2", "--frames",
         "6"]


def test_help_states_units(capsys):
    for cmd in ("phantom", "downsample", "wmf", "train", "predict", "evaluate", "bench", "demo"):
        assert main([cmd, "--help"]) == 0
    out = capsys.readouterr().out
    for unit in ("(mm)", "(m/s)", "(dB", "(s)", "beats/min", "(voxels)"):
        assert unit in out


def test_bad_numeric_option_fails_at_parse_time(capsys, tmp_path):
    assert main(["phantom", "--out", str(tmp_path / "x.h5"), "--voxel-mm", "-1"]) == 2
    assert main(["downsample", "in.h5", "--out", str(tmp_path / "y.h5"), "--snr-db", "nan"]) == 2
    assert not (tmp_path / "x.h5").exists()


def test_pipeline(tmp_path, capsys):
    hr, lr = tmp_path / "hr.h5", tmp_path / "lr.h5"
    assert main(["phantom", "--out", str(hr), "--seed", "3", *SMALL]) == 0
    assert main(["downsample", str(hr), "--out", str(lr), "--snr-db", "15"]) == 0
    with h5py.File(lr) as fh:
        assert fh["u"].shape == (6, 32, 32, 16) and fh["venc_u"].shape == (6,)
        assert fh["mag_v"].shape == (6, 32, 32, 16) and fh["dx"][0].tolist() == [4.0, 4.0, 4.0]
    assert main(["wmf", str(lr), "--out", str(tmp_path / "wmf.nii.gz")]) == 0
    assert "Hz" in capsys.readouterr().out
    run = tmp_path / "run"
    args = ["train", "--out", str(run), "--cfd", str(lr), str(hr), "--mri", str(lr),
            "--model-channels", "4", "--model-groups", "1", "--model-blocks", "1",
            "--model-reduction", "2", "--batch-size", "4", "--steps", "2", "--quiet",
            "--patch-size-x", "8", "--patch-size-y", "8", "--patch-size-z", "4",
            "--patch-cfd-per-frame", "2", "--patch-cfd-covered", "2", "--patch-mri-per-frame", "1"]
    assert main(args) == 0
    assert main(args) == 2  # refuses to overwrite a run
    assert "already holds" in capsys.readouterr().err
    model = run / "model.safetensors"
    out = tmp_path / "sr.h5"
    assert main(["predict", str(lr), "--model", str(model), "--out", str(out), "--quiet",
                 "--patch-x", "16", "--patch-y", "16", "--patch-z", "8", "--stride-x", "14",
                 "--stride-y", "14", "--stride-z", "6"]) == 0
    with h5py.File(out) as fh:
        assert fh["u"].shape == (6, 64, 64, 32) and fh["mask"].shape == (6, 64, 64, 32)
        assert np.all(np.isfinite(fh["w"][()]))
        np.testing.assert_allclose(fh["dx"][0], [2.0, 2.0, 2.0])
    assert main(["predict", str(lr), "--model", str(model), "--out", str(lr)]) == 2
    assert "input" in capsys.readouterr().err
    nii = tmp_path / "pat"
    assert main(["predict", str(lr), "--model", str(model), "--out", f"{nii}.nii.gz",
                 "--quiet", "--patch-x", "16", "--patch-y", "16", "--patch-z", "8"]) == 2
    assert "--stride-x 28 exceeds --patch-x 16" in capsys.readouterr().err
    assert main(["predict", str(lr), "--model", str(model), "--out", f"{nii}.nii.gz",
                 "--quiet", "--patch-x", "16", "--patch-y", "16", "--patch-z", "8",
                 "--stride-x", "16", "--stride-y", "16", "--stride-z", "8"]) == 0
    assert (tmp_path / "pat_u.nii.gz").is_file() and (tmp_path / "pat_prob.nii.gz").is_file()
    uvw = [str(tmp_path / f"pat_{c}.nii.gz") for c in "uvw"]
    again = ["predict", "--nifti", *uvw, "--model", str(model), "--venc", "1.5", "--quiet",
             "--patch-x", "32", "--patch-y", "32", "--patch-z", "16", "--out"]
    assert main([*again, str(tmp_path / "x.h5"), "--dx", "4", "4", "4"]) == 2
    assert "disagrees with the given dx" in capsys.readouterr().err
    assert main([*again, str(tmp_path / "x.h5"), "--venc", "nan"]) == 2


def test_user_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as fh:
        for c in "uvw":
            fh[c] = np.zeros((2, 4, 4, 4), np.float32)
        fh["dx"] = np.ones((2, 3))
        fh["mask"] = np.ones((2, 4, 4, 5))
    assert main(["wmf", str(bad), "--out", str(tmp_path / "w.nii.gz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mask shape" in err[0] and str(bad) in err[0]
    one = tmp_path / "one.h5"
    with h5py.File(one, "w") as fh:
        for c in "uvw":
            fh[c] = np.zeros((1, 4, 4, 4), np.float32)
        fh["dx"] = np.ones((1, 3))
    assert main(["wmf", str(one), "--out", str(tmp_path / "w.nii.gz")]) == 2
    assert "time axis" in capsys.readouterr().err
