"""CLI end to end on a small phantom NIfTI, error paths, evaluation helpers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from medshared.io import read_nifti, write_nifti
from perfdecon import __version__
from perfdecon.cli import main
from perfdecon.evaluate import bland_altman_plot, roc_auc


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("phantom")
    rc = main(["phantom", str(d), "--slices", "2", "--size", "96", "--frames", "40", "--seed", "4"])
    assert rc == 0
    return d


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"perfdecon {__version__}"


def test_help_is_fast_and_does_not_import_torch():
    code = "import sys, perfdecon.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_phantom_files(phantom_dir):
    ctp = read_nifti(phantom_dir / "ctp.nii.gz")
    assert ctp.data.shape == (96, 96, 2, 40) and ctp.data.dtype == np.int16
    assert ctp.zooms[3] == pytest.approx(1.0)
    truth = json.loads((phantom_dir / "truth.json").read_text())
    assert truth["core_volume_ml"] > 0


def test_maps_end_to_end(phantom_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["maps", str(phantom_dir / "ctp.nii.gz"), "--out", str(out)])
    assert rc == 0
    ctp = read_nifti(phantom_dir / "ctp.nii.gz")
    for name in ("cbf", "cbv", "mtt", "tmax", "ttp", "rcbf", "core"):
        img = read_nifti(out / f"{name}.nii.gz")
        assert img.data.shape == (96, 96, 2)
        np.testing.assert_allclose(img.affine, ctp.affine)
        assert np.isfinite(img.data).all()
    core = read_nifti(out / "core.nii.gz").data
    assert core.dtype == np.uint8
    truth = read_nifti(phantom_dir / "core_mask.nii.gz").data > 0
    dice = 2 * (truth & (core > 0)).sum() / (truth.sum() + (core > 0).sum())
    assert dice > 0.5
    # CBF in healthy tissue: Tikhonov 0.3 underestimates (exponential residue, ~1 s delay,
    # smoothing); measured median ratio 0.52
    cbf = read_nifti(out / "cbf.nii.gz").data
    true_cbf = read_nifti(phantom_dir / "true_cbf.nii.gz").data
    healthy = (true_cbf > 0) & ~truth & (read_nifti(phantom_dir / "penumbra_mask.nii.gz").data == 0)
    ratio = np.median(cbf[healthy] / true_cbf[healthy])
    assert 0.4 < ratio < 0.8
    aif = np.loadtxt(out / "aif.txt")
    true_aif = np.loadtxt(phantom_dir / "aif_true.txt")
    assert aif.shape == (40,) and np.corrcoef(aif, true_aif)[0, 1] > 0.99
    assert (out / "aif.png").stat().st_size > 1000
    s = json.loads((out / "summary.json").read_text())
    assert s["aif"]["source"] == "auto" and s["units"]["cbf"] == "mL/100g/min"
    assert s["core_volume_ml"] == pytest.approx((core > 0).sum() * 0.9 * 0.9 * 5 / 1000, rel=1e-4)
    assert "maps" in s["runtime_s"]


def test_maps_with_aif_file_mask_and_method(phantom_dir, tmp_path):
    out = tmp_path / "o2"
    rc = main(
        [
            "maps",
            str(phantom_dir / "ctp.nii.gz"),
            "--out",
            str(out),
            "--method",
            "osvd",
            "--aif-mask",
            str(phantom_dir / "aif_mask.nii.gz"),
            "--mask",
            str(phantom_dir / "brain_mask.nii.gz"),
        ]
    )
    assert rc == 0
    assert json.loads((out / "summary.json").read_text())["aif"]["source"] == "mask"
    out3 = tmp_path / "o3"
    rc = main(
        [
            "maps",
            str(phantom_dir / "ctp.nii.gz"),
            "--out",
            str(out3),
            "--aif-file",
            str(phantom_dir / "aif_true.txt"),
            "--smooth-xy",
            "0",
            "--smooth-t",
            "0",
        ]
    )
    assert rc == 0
    s = json.loads((out3 / "summary.json").read_text())
    assert s["aif"]["source"] == "file" and s["aif"]["location_zyx"] is None


def _err(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("perfdecon: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    return err


def test_cli_errors(phantom_dir, tmp_path, capsys):
    out = str(tmp_path / "x")
    # 3D input: wrong dimensionality
    vol = tmp_path / "vol.nii.gz"
    write_nifti(vol, np.zeros((4, 4, 4), np.float32))
    assert "4" in _err(capsys, ["maps", str(vol), "--out", out])
    # too few frames
    short = tmp_path / "short.nii.gz"
    write_nifti(short, np.full((8, 8, 1, 6), 30.0, np.float32), zooms=(1, 1, 1, 1))
    assert "frames" in _err(capsys, ["maps", str(short), "--out", out])
    # NaN in the series
    nan = tmp_path / "nan.nii.gz"
    d = np.full((8, 8, 1, 12), 30.0, np.float32)
    d[0, 0, 0, 0] = np.nan
    write_nifti(nan, d, zooms=(1, 1, 1, 1))
    assert "NaN" in _err(capsys, ["maps", str(nan), "--out", out])
    # mismatched mask
    m = tmp_path / "m.nii.gz"
    write_nifti(m, np.ones((5, 5, 2), np.uint8))
    assert "does not match" in _err(
        capsys, ["maps", str(phantom_dir / "ctp.nii.gz"), "--out", out, "--mask", str(m)]
    )
    # constant AIF from a file
    f = tmp_path / "flat.txt"
    f.write_text("\n".join(["0"] * 40))
    assert "all zero" in _err(
        capsys, ["maps", str(phantom_dir / "ctp.nii.gz"), "--out", out, "--aif-file", str(f)]
    )
    # DSC without TE
    assert "TE" in _err(
        capsys, ["maps", str(phantom_dir / "ctp.nii.gz"), "--out", out, "--modality", "dsc"]
    )
    assert not (tmp_path / "x" / "cbf.nii.gz").exists()


def test_missing_input_message(tmp_path, capsys):
    err = _err(capsys, ["maps", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "o")])
    assert "nope.nii.gz" in err


def test_roc_auc_matches_mann_whitney():
    rng = np.random.default_rng(0)
    label = rng.random(500) < 0.3
    score = rng.normal(size=500) + label * 1.0
    score[:50] = np.round(score[:50])  # ties
    u = mannwhitneyu(score[label], score[~label]).statistic
    assert roc_auc(score, label) == pytest.approx(u / (label.sum() * (~label).sum()), rel=1e-12)


def test_bland_altman_plot(tmp_path):
    rows = [
        {"source": s, "vol_pred_ml": p, "vol_true_ml": t}
        for s in ("true", "auto")
        for p, t in ((10, 12), (20, 19), (5, 6))
    ]
    bland_altman_plot(tmp_path / "ba.png", rows)
    assert (tmp_path / "ba.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_phantom_accuracy_rows_meet_targets():
    from perfdecon.evaluate import accuracy_table, phantom_accuracy

    rows = phantom_accuracy(residues=("gamma",), noise_levels=(0.0,), delays=(0.0, 3.0), block=1)
    by = {(r["method"], r["delay_s"]): r for r in rows}
    for m in ("ssvd", "csvd", "osvd"):
        assert abs(by[(m, 0.0)]["cbf_med"]) < 15.0
    for m in ("csvd", "osvd", "tikhonov-circ"):
        assert abs(by[(m, 3.0)]["cbf_med"] - by[(m, 0.0)]["cbf_med"]) < 5.0
    assert by[("tikhonov", 3.0)]["cbf_med"] < by[("tikhonov", 0.0)]["cbf_med"] - 5.0
    assert abs(by[("osvd", 0.0)]["cbv_med"]) < 2.0
    assert "osvd" in accuracy_table(rows)


def test_segmentation_eval_with_learned_column(monkeypatch):
    import perfdecon.predict
    from perfdecon.evaluate import segmentation_eval, segmentation_table
    from perfdecon.phantom import brain_case

    kw = {"n_slices": 2, "size": 96, "n_frames": 40}
    true_aif = brain_case(np.random.default_rng([10_000, 0]), **kw).aif

    def fake_predict(checkpoint, ctc, brain_mask=None):
        assert checkpoint == "model.safetensors" and ctc.shape[:3] == brain_mask.shape
        return true_aif

    monkeypatch.setattr(perfdecon.predict, "predict_aif", fake_predict)
    # the robust reference is skipped for a learned AIF (its CBV scale is arbitrary): compare
    # like with like
    from perfdecon.config import MapsConfig

    cfg = MapsConfig(robust_reference=False)
    res = segmentation_eval(1, checkpoint="model.safetensors", case_kwargs=kw, config=cfg)
    by = {s["source"]: s for s in res.summary}
    assert set(by) == {"true", "auto", "learned"}
    assert by["true"]["dice"] > 0.6 and by["auto"]["dice"] > 0.6
    assert by["learned"]["dice"] == pytest.approx(by["true"]["dice"])
    assert by["true"]["auc"] > 0.9
    assert "learned" in segmentation_table(res.summary)
    none = segmentation_eval(1, case_kwargs=kw)
    assert any("skipped" in m for m in none.messages)
    assert {s["source"] for s in none.summary} == {"true", "auto"}


def test_evaluate_cli_writes_outputs(tmp_path, capsys):
    rc = main(
        [
            "evaluate",
            "--cases",
            "1",
            "--slices",
            "2",
            "--size",
            "96",
            "--frames",
            "40",
            "--noise",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "rCBF AUC" in out and "CBF% d=0" in out
    seg = json.loads((tmp_path / "segmentation.json").read_text())
    assert {r["source"] for r in seg["rows"]} == {"true", "auto"}
    assert (tmp_path / "bland_altman.png").stat().st_size > 1000
    assert len(json.loads((tmp_path / "accuracy.json").read_text())) == 3 * 5 * 4


def test_missing_dt_needs_flag(tmp_path, capsys):
    p = tmp_path / "nodt.nii.gz"
    d = np.full((8, 8, 1, 12), 30.0, np.float32)
    write_nifti(p, d, zooms=(1, 1, 1, 0))
    assert "--dt" in _err(capsys, ["maps", str(p), "--out", str(tmp_path / "o")])


def test_train_is_forwarded(capsys):
    assert main(["train", "--help"]) == 0
    assert "usage: perfdecon train" in capsys.readouterr().out


def test_dsc_pipeline_matches_ct_pipeline():
    from perfdecon.phantom import brain_case
    from perfdecon.pipeline import PipelineConfig, run_case

    case = brain_case(np.random.default_rng(8), n_slices=2, size=96, n_frames=40, noise_hu=0.5)
    ct = run_case(case.ctp_hu, case.dt, brain_mask=case.brain_mask)
    te = 0.03
    dr2 = 0.1 * (case.ctp_hu - case.ctp_hu[..., :3].mean(-1, keepdims=True))  # 1/s
    signal = 800.0 * np.exp(-te * dr2)
    dsc = run_case(
        signal, case.dt, config=PipelineConfig(modality="dsc", te=te), brain_mask=case.brain_mask
    )
    inter = (ct.core & dsc.core).sum()
    assert 2 * inter / (ct.core.sum() + dsc.core.sum()) > 0.95
    b = case.brain_mask
    ref = dsc.reference["cbf_ml_100g_min"]
    np.testing.assert_allclose(dsc.rcbf[b] * ref, dsc.cbf[b], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.median(dsc.rcbf[b]), np.median(ct.rcbf[b]), rtol=0.02)


def test_maps_with_aif_model(phantom_dir, tmp_path, monkeypatch):
    import perfdecon.predict

    true_aif = np.loadtxt(phantom_dir / "aif_true.txt")
    seen = {}

    def fake_predict(checkpoint, ctc, brain_mask=None, allow_nonpositive_area=False):
        seen["args"] = (str(checkpoint), ctc.shape, brain_mask.shape, allow_nonpositive_area)
        return true_aif

    monkeypatch.setattr(perfdecon.predict, "predict_aif", fake_predict)
    out = tmp_path / "om"
    ckpt = tmp_path / "ckpt.safetensors"
    ckpt.write_bytes(b"not read: predict_aif is replaced")
    rc = main(
        [
            "maps",
            str(phantom_dir / "ctp.nii.gz"),
            "--out",
            str(out),
            "--aif-model",
            str(ckpt),
        ]
    )
    assert rc == 0
    assert seen["args"] == (str(ckpt), (2, 96, 96, 40), (2, 96, 96), True)
    s = json.loads((out / "summary.json").read_text())
    assert s["aif"]["source"] == "model"
    np.testing.assert_allclose(np.loadtxt(out / "aif.txt"), true_aif, rtol=1e-5)


def test_demo_rows_and_summary_json(tmp_path, capsys):
    js = tmp_path / "rows.json"
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--summary-json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "core Dice" in out and "median CBF error" in out
    rows = json.loads(js.read_text())
    assert {tuple(sorted(r)) for r in rows} == {
        ("baseline", "case", "method", "metric", "tool", "unit", "value")
    }
    dice = next(r for r in rows if r["metric"] == "core Dice")
    assert dice["tool"] == "perfdecon" and dice["value"] > 0.5
    osvd = next(r for r in rows if r["method"] == "osvd")
    assert abs(osvd["value"]) < 5.0  # oSVD within 5 % on the noise-free gamma grid


def test_evaluate_isles_on_a_fake_tree_of_the_real_layout(tmp_path, capsys):
    from perfdecon.phantom import brain_case

    root = tmp_path / "TRAINING"
    for n in (1, 2):
        c = brain_case(np.random.default_rng([77, n]), n_slices=2, size=96, n_frames=40)
        for mod, data, zooms in (
            ("CT_4DPWI", np.rint(c.ctp_hu).astype(np.int16).transpose(2, 1, 0, 3),
             (0.9, 0.9, 5.0, 1.0)),
            ("OT", c.core_mask.astype(np.uint8).transpose(2, 1, 0), (0.9, 0.9, 5.0)),
        ):
            ident = 345560 + 10 * n + len(mod)
            folder = root / f"case_{n}" / f"SMIR.Brain.XX.O.{mod}.{ident}"
            folder.mkdir(parents=True)
            write_nifti(folder / f"SMIR.Brain.XX.O.{mod}.{ident}.nii", data, np.eye(4),
                        zooms=zooms)
    (root / "case_3").mkdir()  # a broken case is reported, the others go on
    out = tmp_path / "ev"
    assert main(["evaluate", "--isles", str(root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "case_3" in text and "failed" in text
    res = json.loads((out / "isles.json").read_text())
    auto = next(s for s in res["summary"] if s["source"] == "auto")
    assert auto["n"] == 2 and auto["dice"] > 0.6 and auto["auc"] > 0.9
    assert (out / "isles.csv").read_text().startswith("case,source,status,dice")
    err = _err(capsys, ["evaluate", "--isles", str(tmp_path / "none")])
    assert "none" in err
