"""Issue-8 probes on perfdecon's CLI: outputs checked before work, whole sets or nothing, dt and
AIF plausibility, parse-time validation, strict JSON, --help units/defaults, cohort runs."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from medshared.io import read_nifti, write_nifti
from perfdecon.cli import build_parser, main
from perfdecon.maps_job import OUTPUT_FILES
from perfdecon.phantom_job import PhantomSpec, write_phantom


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("case")
    write_phantom(d, PhantomSpec(seed=4, slices=2, size=96, frames=40))
    return d


def _err(capsys, argv, rc=2):
    assert main(argv) == rc
    err = capsys.readouterr().err
    lines = [x for x in err.strip().splitlines() if not x.startswith("usage:")]
    assert "Traceback" not in err and lines
    return lines[-1]


def test_output_equal_to_input_is_refused(case, tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(case / "ctp.nii.gz", d / "cbf.nii.gz")
    before = (d / "cbf.nii.gz").read_bytes()
    err = _err(capsys, ["maps", str(d / "cbf.nii.gz"), "--out", str(d)])
    assert "cbf.nii.gz" in err and "input" in err
    assert (d / "cbf.nii.gz").read_bytes() == before
    # a hard link of the input in the output folder counts as the input
    h = tmp_path / "h"
    h.mkdir()
    os.link(case / "ctp.nii.gz", h / "rcbf.nii.gz")
    assert "input" in _err(capsys, ["maps", str(case / "ctp.nii.gz"), "--out", str(h)])


def test_folder_fifo_symlink_at_an_output_are_refused_before_work(case, tmp_path, capsys):
    o = tmp_path / "o"
    (o / "mtt.nii.gz").mkdir(parents=True)
    assert "folder" in _err(capsys, ["maps", str(case / "ctp.nii.gz"), "--out", str(o)])
    assert sorted(p.name for p in o.iterdir()) == ["mtt.nii.gz"]  # nothing written
    f = tmp_path / "f"
    f.mkdir()
    os.mkfifo(f / "aif.txt")
    assert "FIFO" in _err(capsys, ["maps", str(case / "ctp.nii.gz"), "--out", str(f)])
    assert sorted(p.name for p in f.iterdir()) == ["aif.txt"]
    s = tmp_path / "s"
    s.mkdir()
    (s / "core.nii.gz").symlink_to(tmp_path / "elsewhere.nii.gz")
    assert "symlink" in _err(capsys, ["maps", str(case / "ctp.nii.gz"), "--out", str(s)])
    assert not (tmp_path / "elsewhere.nii.gz").exists()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not os.access(ro, os.W_OK):  # root may write anywhere
            assert "writable" in _err(capsys, ["phantom", str(ro / "x")])
    finally:
        ro.chmod(0o700)


def test_interrupt_mid_way_leaves_no_partial_set(case, tmp_path, monkeypatch):
    import perfdecon.io

    out = tmp_path / "maps"
    out.mkdir()
    (out / "cbf.nii.gz").write_bytes(b"previous result")
    real = perfdecon.io.write_map
    calls = []

    def flaky(path, *a, **k):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C or the runner's SIGTERM handler raise
        return real(path, *a, **k)

    monkeypatch.setattr(perfdecon.io, "write_map", flaky)
    assert main(["maps", str(case / "ctp.nii.gz"), "--out", str(out)]) == 130
    assert sorted(p.name for p in out.iterdir()) == ["cbf.nii.gz"]
    assert (out / "cbf.nii.gz").read_bytes() == b"previous result"
    monkeypatch.setattr(perfdecon.io, "write_map", real)
    assert main(["maps", str(case / "ctp.nii.gz"), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)


def test_dt_plausibility(case, tmp_path, capsys):
    img = read_nifti(case / "ctp.nii.gz")
    ms = tmp_path / "ms.nii.gz"  # a 1000 "s" frame interval: ms without the time unit
    write_nifti(ms, img.data, img.affine, zooms=(0.9, 0.9, 5.0, 1000.0))
    err = _err(capsys, ["maps", str(ms), "--out", str(tmp_path / "o1")])
    assert "pixdim[4]" in err and "1000" in err and "--dt" in err
    nan = tmp_path / "nan.nii.gz"
    write_nifti(nan, img.data, img.affine, zooms=(0.9, 0.9, 5.0, float("nan")))
    err = _err(capsys, ["maps", str(nan), "--out", str(tmp_path / "o2")])
    assert "pixdim[4]" in err and "--dt" in err
    # --dt overrides a bad header; out of range is refused when parsed
    assert main(["maps", str(ms), "--out", str(tmp_path / "o3"), "--dt", "1", "--quiet"]) == 0
    assert json.loads((tmp_path / "o3" / "summary.json").read_text())["dt_s"] == 1.0
    for bad in ("0.01", "100", "-1", "nan", "x"):
        assert "--dt" in _err(capsys, ["maps", str(ms), "--out", str(tmp_path / "o4"),
                                       "--dt", bad])
    assert not (tmp_path / "o4").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["phantom", "OUT", "--frames", "0"],
        ["phantom", "OUT", "--seed", "-1"],
        ["phantom", "OUT", "--size", "8"],
        ["phantom", "OUT", "--dt", "inf"],
        ["evaluate", "--cases", "0"],
        ["evaluate", "--noise", "-2"],
        ["evaluate", "--checkpoint", "missing.safetensors"],
        ["bench", "--repeats", "0"],
        ["bench", "--threads", "-1"],
        ["bench", "--loop-voxels", "0"],
        ["maps", "S.nii.gz", "--out", "OUT", "--lambda-rel", "0"],
        ["maps", "S.nii.gz", "--out", "OUT", "--smooth-xy", "-1"],
        ["maps", "S.nii.gz", "--out", "OUT", "--jobs", "0"],
        ["maps", "S.nii.gz", "--out", "OUT", "--method", "fft"],
        ["train", "--epochs", "0"],
        ["train", "--lr", "-1"],
    ],
)
def test_numeric_options_are_checked_when_parsed(argv, tmp_path, capsys):
    argv = [str(tmp_path / a) if a in ("OUT", "S.nii.gz") else a for a in argv]
    err = _err(capsys, argv)
    assert "error" in err
    assert not (tmp_path / "OUT").exists()


def test_help_states_units_and_defaults():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        if name == "train":
            from perfdecon.train_config import build_parser as train_parser

            p = train_parser()
        for a in p._actions:
            if not a.option_strings or a.dest in ("help", "version"):
                continue
            text = a.help or ""
            if a.required:
                continue
            assert "default" in text, f"{name} {a.option_strings}: {text!r}"


def test_aif_quality_gate(case, tmp_path, capsys):
    # the curve of one white-matter-like voxel is not an arterial bolus
    brain = read_nifti(case / "brain_mask.nii.gz")
    vessel = read_nifti(case / "vessel_mask.nii.gz").data > 0
    core = read_nifti(case / "core_mask.nii.gz").data > 0
    tissue = (brain.data > 0) & ~vessel & ~core
    m = np.zeros(tissue.shape, np.uint8)
    m[tuple(np.argwhere(tissue)[len(np.argwhere(tissue)) // 2])] = 1
    wm = tmp_path / "wm.nii.gz"
    write_nifti(wm, m, brain.affine)
    argv = ["maps", str(case / "ctp.nii.gz"), "--out", str(tmp_path / "q"), "--aif-mask", str(wm)]
    err = _err(capsys, argv)
    assert "quality" in err and "--force" in err
    assert not (tmp_path / "q").exists()
    assert main([*argv, "--force", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "WARNING" in err
    s = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert s["aif"]["quality"] < 0.5 and s["warnings"]


def test_summary_reports_effective_settings_and_strict_json(case, tmp_path):
    assert main(["maps", str(case / "ctp.nii.gz"), "--out", str(tmp_path / "c"), "--method",
                 "csvd", "--quiet"]) == 0
    text = (tmp_path / "c" / "summary.json").read_text()
    s = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert s["config"]["matrix"] == "volterra"  # as given
    assert s["effective"]["matrix"] == "circulant" and s["effective"]["threshold"] == 0.1
    assert s["effective"]["lambda_rel"] is None
    assert "excluding" in s["reference"]["definition"] and s["reference"]["n_voxels"] > 0


def test_too_many_frames_is_refused_before_deconvolution(tmp_path, capsys):
    p = tmp_path / "long.nii.gz"
    write_nifti(p, np.full((4, 4, 1, 1100), 30, np.int16), zooms=(1, 1, 1, 1))
    err = _err(capsys, ["maps", str(p), "--out", str(tmp_path / "o")])
    assert "1100 frames" in err and "1024" in err


def test_cohort_runs_each_case_and_reports_failures(case, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(case / "ctp.nii.gz", inputs / "a.nii.gz")
    shutil.copy(case / "ctp.nii.gz", inputs / "b.nii.gz")
    write_nifti(inputs / "broken.nii.gz", np.zeros((4, 4, 4), np.float32))  # 3D: fails
    out = tmp_path / "cohort"
    rc = main(["maps", str(inputs), "--out", str(out), "--quiet"])
    assert rc == 2  # one case failed; the others ran
    text = capsys.readouterr().out
    assert "2 of 3 cases ok, 1 failed" in text
    rows = {r["name"]: r for r in json.loads((out / "cohort.json").read_text())["cases"]}
    assert rows["a"]["status"] == rows["b"]["status"] == "ok"
    assert rows["broken"]["status"] == "failed" and "ndim=4" in rows["broken"]["error"]
    assert rows["a"]["core_ml"] == pytest.approx(rows["b"]["core_ml"])
    assert sorted(p.name for p in (out / "a").iterdir()) == sorted(OUTPUT_FILES)
    assert not (out / "broken").exists()  # nothing half-written for the failed case
    csv_lines = (out / "cohort.csv").read_text().splitlines()
    assert csv_lines[0].startswith("name,series,status") and len(csv_lines) == 4


def test_vof_overview_and_reference_in_the_summary(case, tmp_path):
    out = tmp_path / "v"
    assert main(["maps", str(case / "ctp.nii.gz"), "--out", str(out), "--vof-correction",
                 "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    vessel = read_nifti(case / "vessel_mask.nii.gz").data > 0
    assert vessel[tuple(s["vof"]["location_xyz"])]
    assert s["vof"]["aif_scale_factor"] >= 1.0 and len(s["vof"]["curve"]) == 40
    assert s["config"]["vof_correction"] and s["config"]["tmax_method"] == "calibrated"
    assert s["effective"]["tmax_method"] == "calibrated"
    assert s["mismatch_ratio"] is None or s["mismatch_ratio"] >= 1.0
    assert s["input"]["dt"] == 1.0
    from PIL import Image

    with Image.open(out / "overview.png") as im:  # 2 slices x 4 maps + the curve row
        assert im.size[0] > 800 and im.size[1] > 600


@pytest.mark.slow
def test_cohort_with_worker_processes(case, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b"):
        shutil.copy(case / "ctp.nii.gz", inputs / f"{name}.nii.gz")
    out = tmp_path / "jobs"
    assert main(["maps", str(inputs), "--out", str(out), "--jobs", "2", "--quiet",
                 "--no-figures"]) == 0
    rows = json.loads((out / "cohort.json").read_text())["cases"]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[0]["core_ml"] == pytest.approx(rows[1]["core_ml"])
    assert not (out / "a" / "overview.png").exists()


def test_empty_aif_file_and_random_checkpoint_are_one_line(case, tmp_path, capsys):
    empty = tmp_path / "aif.txt"
    empty.write_text("")
    err = _err(capsys, ["maps", str(case / "ctp.nii.gz"), "--aif-file", str(empty), "--out",
                        str(tmp_path / "m")])
    assert "aif.txt" in err and "no values" in err
    ck = tmp_path / "ck.safetensors"
    ck.write_bytes(np.random.default_rng(0).bytes(3000))
    err = _err(capsys, ["evaluate", "--checkpoint", str(ck), "--cases", "1", "--size", "32"])
    assert "ck.safetensors" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aif.txt", "ck.safetensors"]


def test_batch_reports_each_bad_case_in_one_line_and_writes_nothing_for_it(case, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(case / "ctp.nii.gz", inputs / "good.nii.gz")
    data = (case / "ctp.nii.gz").read_bytes()
    (inputs / "corrupt.nii.gz").write_bytes(data[: len(data) // 3])  # truncated gzip
    write_nifti(inputs / "short.nii.gz", np.full((16, 16, 2, 5), 30, np.int16),
                zooms=(1, 1, 1, 1))  # 5 frames
    os.mkfifo(inputs / "pipe.nii.gz")  # never opened: it would block
    out = tmp_path / "batch"
    (out / "short").mkdir(parents=True)  # an earlier run's folder of a now failing case
    (out / "short" / "keep.txt").write_text("old")
    missing = tmp_path / "gone.nii.gz"
    rc = main(["maps", str(inputs), str(missing), str(case / "ctp.nii.gz"), "--out", str(out),
               "--quiet", "--no-figures"])
    assert rc == 2
    rows = {r["name"]: r for r in json.loads((out / "cohort.json").read_text())["cases"]}
    assert set(rows) == {"good", "corrupt", "short", "pipe", "gone", "ctp"}
    assert rows["good"]["status"] == rows["ctp"]["status"] == "ok"
    expect = {"corrupt": ("corrupt.nii.gz", "corrupt or truncated"),
              "short": ("short.nii.gz", "5 frames"),
              "pipe": ("pipe.nii.gz", "FIFO"),
              "gone": ("gone.nii.gz", "no such file")}
    for name, words in expect.items():
        r = rows[name]
        assert r["status"] == "failed" and r["out"] == ""
        assert "\n" not in r["error"] and all(w in r["error"] for w in words), r["error"]
        assert "Traceback" not in r["error"]
    assert not (out / "corrupt").exists() and not (out / "pipe").exists()
    assert not (out / "gone").exists()
    assert sorted(p.name for p in (out / "short").iterdir()) == ["keep.txt"]  # untouched
    written = sorted(p.name for p in (out / "good").iterdir())
    assert written == sorted(n for n in OUTPUT_FILES if not n.endswith(".png"))
    csv_rows = (out / "cohort.csv").read_text().splitlines()
    assert len(csv_rows) == 7 and all(line.count("\n") == 0 for line in csv_rows)
    # a single missing input is still one error line before any work
    assert main(["maps", str(missing), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
