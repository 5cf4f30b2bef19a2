import json

import nibabel as nib
import numpy as np
import pytest
from nibabel.streamlines import Field

from medshared.io import Tractogram, write_streamlines
from streamvq.cli import main
from streamvq.synthetic import MNI_1MM, synthetic_dataset

TINY = ["--hidden", "8", "--residual-hidden", "4", "--embedding-dim", "4",
        "--codebook-size", "8", "--batch-size", "4", "--log-every", "1", "--save-every", "2"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    ref = Tractogram([], MNI_1MM.affine, MNI_1MM.dimensions, MNI_1MM.voxel_sizes)
    files = []
    for b in synthetic_dataset(3, (50, 80), tracts=("CST_L", "AF_L", "MCP"), seed=3):
        folder = root / "bundles" / b.subject
        folder.mkdir(parents=True, exist_ok=True)
        write_streamlines(folder / f"{b.tract}.trk", b.streamlines, ref)
        files.append(folder / f"{b.tract}.trk")
    data = root / "data.h5"
    assert main(["prepare", *map(str, files), "--out", str(data), "--val-fraction", "0.34"]) == 0
    for kind in ("ae", "vqdiff"):
        assert main(["train", "--data", str(data), "--out", str(root / kind), "--model", kind,
                     "--steps", "2", "--quiet", *TINY]) == 0
    return root, files, data


def test_prepare_reports_counts(work, capsys):
    root, files, data = work
    out = root / "again.h5"
    assert main(["prepare", *map(str, files[:3]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "bundle tensors (3, 64, 64)" in text and "0.05 normalised =" in text


def test_encode_decode_round_trip_keeps_the_source_space(work, tmp_path, capsys):
    root, files, _ = work
    src = files[0]
    lat = tmp_path / "lat.h5"
    assert main(["encode", str(src), "--weights", str(root / "vqdiff"), "--out", str(lat)]) == 0
    n_src = len(nib.streamlines.load(str(src)).streamlines)
    for fmt in ("trk", "tck", "trx"):
        out = tmp_path / f"dec.{fmt}"
        assert main(["decode", str(lat), "--weights", str(root / "vqdiff"), "--out", str(out)]) == 0
        if fmt == "trk":
            t = nib.streamlines.load(str(out))
            np.testing.assert_allclose(t.header[Field.VOXEL_TO_RASMM], MNI_1MM.affine)
            assert tuple(t.header[Field.DIMENSIONS]) == (182, 218, 182)
            assert len(t.streamlines) == n_src and t.streamlines[0].shape == (64, 3)
            from dipy.io.streamline import load_tractogram

            sft = load_tractogram(str(out), "same", bbox_valid_check=False)
            np.testing.assert_allclose(sft.affine, MNI_1MM.affine)
            assert sft.dimensions.tolist() == [182, 218, 182]
        elif fmt == "tck":
            assert len(nib.streamlines.load(str(out)).streamlines) == n_src
        else:
            from medshared.io import read_streamlines

            back = read_streamlines(out)
            np.testing.assert_allclose(back.affine, MNI_1MM.affine)
            assert len(back.streamlines) == n_src


def test_npy_latents_need_a_reference_for_trk(work, tmp_path, capsys):
    root, files, _ = work
    lat = tmp_path / "lat.npy"
    assert main(["encode", str(files[1]), "--weights", str(root / "ae"), "--out", str(lat)]) == 0
    arr = np.load(lat)
    assert arr.shape[1:] == (4, 16, 16)
    out = tmp_path / "dec.trk"
    assert main(["decode", str(lat), "--weights", str(root / "ae"), "--out", str(out)]) == 2
    assert "needs a reference space" in capsys.readouterr().err
    assert main(["decode", str(lat), "--weights", str(root / "ae"), "--out", str(out),
                 "--reference", str(files[1])]) == 0
    assert len(nib.streamlines.load(str(out)).streamlines) == arr.shape[0] * 64


def test_latent_shape_mismatch_and_wrong_model(work, tmp_path, capsys):
    root, files, _ = work
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 5, 16, 16), np.float32))
    assert main(["decode", str(bad), "--weights", str(root / "ae"), "--out",
                 str(tmp_path / "x.tck")]) == 2
    err = capsys.readouterr().err
    assert "latents have shape (2, 5, 16, 16)" in err and "expects (G, 4, 16, 16)" in err
    lat = tmp_path / "lat.h5"
    assert main(["encode", str(files[0]), "--weights", str(root / "ae"), "--out", str(lat)]) == 0
    assert main(["decode", str(lat), "--weights", str(root / "vqdiff"), "--out",
                 str(tmp_path / "x.tck")]) == 2
    assert "made by a ae model" in capsys.readouterr().err
    not_model = tmp_path / "w.safetensors"
    not_model.write_bytes(b"garbage")
    assert main(["decode", str(lat), "--weights", str(not_model), "--out",
                 str(tmp_path / "x.tck")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_interpolate_writes_a_complete_set(work, tmp_path):
    root, files, _ = work
    out = tmp_path / "interp"
    assert main(["interpolate", str(files[0]), str(files[1]), "--weights", str(root / "ae"),
                 "--out", str(out), "--steps", "3"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["interp_000.trk", "interp_001.trk", "interp_002.trk"]
    assert len(nib.streamlines.load(str(out / names[1])).streamlines) == 64


def test_evaluate_and_perturb(work, tmp_path, capsys):
    root, _, data = work
    js = tmp_path / "t.json"
    png = tmp_path / "e.png"
    assert main(["evaluate", "--data", str(data), "--models", str(root / "ae"),
                 f"diff={root / 'vqdiff'}", "--json", str(js), "--embedding-png", str(png)]) == 0
    text = capsys.readouterr().out
    assert "BUAN@0.05norm" in text and "diff" in text and "MDF mm" in text
    table = json.loads(js.read_text())
    assert set(table["values"]) == {"ae", "diff"}
    assert 0.0 <= table["values"]["ae"]["BUAN@0.05norm"]["overall"]["mean"] <= 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ppng = tmp_path / "p.png"
    assert main(["perturb", "--data", str(data), "--models", str(root / "vqdiff"),
                 "--eps", "0.1", "1", "--max-groups", "2", "--png", str(ppng)]) == 0
    out = capsys.readouterr().out
    assert "after the bottleneck" in out and ppng.is_file()


@pytest.mark.parametrize("argv,needle", [
    (["train", "--data", "x.h5", "--out", "r", "--steps", "0"], "--steps must be >= 1"),
    (["train", "--data", "x.h5", "--out", "r", "--lr", "nan"], "finite"),
    (["prepare", "--out", "x.h5", "--synthetic", "0"], "--synthetic must be >= 1"),
    (["perturb", "--data", "x.h5", "--models", "m", "--eps", "-1"], "positive"),
    (["interpolate", "a.trk", "b.trk", "--weights", "w", "--out", "o", "--steps", "1"],
     "--steps must be >= 2"),
])
def test_numeric_options_are_validated_at_parse_time(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_output_equal_to_input_is_refused_before_work(work, capsys):
    _, files, _ = work
    before = files[0].read_bytes()
    assert main(["prepare", str(files[0]), "--out", str(files[0])]) == 2
    assert files[0].read_bytes() == before
    assert "--out" in capsys.readouterr().err


def test_missing_dataset_is_one_line(capsys, tmp_path):
    assert main(["train", "--data", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.h5" in err[0]


def test_help_and_version(capsys):
    assert main(["--version"]) == 0
    assert "streamvq" in capsys.readouterr().out
    for cmd in ("prepare", "train", "encode", "decode", "interpolate", "evaluate", "perturb",
                "bench", "demo"):
        assert main([cmd, "--help"]) == 0
        assert "default" in capsys.readouterr().out


def test_demo_is_registered():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="medshared.demos")}
    assert "streamvq" in eps and eps["streamvq"].value == "streamvq.demo:demo_rows"
