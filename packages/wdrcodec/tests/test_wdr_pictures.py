"""``eval --wavelet`` and ``bench``'s pictures (rate-distortion PNGs, slice strips) and options."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from wdrcodec.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _eval_rows(tmp_path, src, *extra: str) -> list[dict]:
    out = tmp_path / f"rows{len(list(tmp_path.glob('rows*.json')))}.json"
    argv = ["eval", str(src), "--bpv", "0.5,1", "--json", str(out), *extra]
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_eval_wavelet_lossy_rows_only(tmp_path, smooth_volume, capsys):
    pytest.importorskip("pywt")
    src = tmp_path / "v.npy"
    np.save(src, smooth_volume)
    base = _eval_rows(tmp_path, src)
    same = _eval_rows(tmp_path, src, "--wavelet", "bior4.4")
    other = _eval_rows(tmp_path, src, "--wavelet", "bior1.3")
    out = capsys.readouterr().out
    assert "wavelet: bior1.3 (PyWavelets) for the lossy rows" in out
    assert "wavelet: CDF 9/7 (built-in lifting) for the lossy rows" in out
    assert [r["mode"] for r in other] == ["3d", "3d", "3d lossless"]
    # bior4.4 is the built-in CDF 9/7 filter bank (README: within 0.01 dB on real volumes)
    for a, b in zip(base[:2], same[:2]):
        assert abs(a["psnr_range"] - b["psnr_range"]) < 0.05
    # another wavelet really is used for the lossy rows (measured: 1-3 dB lower here) ...
    assert all(b["psnr_range"] < a["psnr_range"] - 0.2 for a, b in zip(base[:2], other[:2]))
    # ... and never for the lossless row: the same LeGall 5/3 stream (eval checks it is exact)
    assert other[2]["ratio"] == base[2]["ratio"] and np.isinf(other[2]["psnr_range"])


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--wavelet", "haar"], "--wavelet: must be cdf97 or a PyWavelets"),
        (["--wavelet", "bior4.4", "--background", "on"], "--background on and --wavelet"),
        (["--modes", "3d,2d", "--background", "on"], "--background on and --mode 2d"),
    ],
)
def test_eval_options_checked_before_the_input_is_opened(tmp_path, capsys, extra, fragment):
    assert main(["eval", str(tmp_path / "absent.npy"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "absent.npy" not in err[0]


def test_eval_wavelet_without_pywavelets_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pywt", None)  # import fails
    assert main(["eval", str(tmp_path / "absent.npy"), "--wavelet", "bior2.2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wdrcodec[wavelets]" in err[0]


@pytest.fixture
def tiny_bench(monkeypatch, dipy_volume):
    """``bench``'s rate-distortion volumes replaced by one small real volume (a fast test;
    slices of 128 x 128, so the 2D anchors' headers do not dominate their rate)."""
    pytest.importorskip("imagecodecs")
    import wdrcodec.bench as bench
    from wdrcodec.data import Sample

    vol = np.ascontiguousarray(dipy_volume[2:8])  # 6 x 128 x 128 uint16
    monkeypatch.setattr(bench, "RD_VOLUMES", (("tiny", lambda: Sample("tiny", vol, (1.0,) * 3)),))
    return vol


def _panels(img: np.ndarray) -> list[np.ndarray]:
    """The three panels of a strip (each with its colour bar): the thirds of its width."""
    rgb = img[..., :3]
    w = rgb.shape[1] // 3
    return [rgb[:, i * w : (i + 1) * w] for i in range(3)]


def test_bench_rd_pictures_and_strip(tmp_path, tiny_bench, capsys):
    mpl_image = pytest.importorskip("matplotlib.image")
    argv = ["bench", "--quick", "--sections", "rd", "--plots", str(tmp_path)]
    assert main([*argv, "--strip-bpv", "1", "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "HTJ2K" in out and "wrote" in out and "Speed at equal rate" not in out
    rows = json.loads((tmp_path / "b.json").read_text())
    assert set(rows) == {"rd"} and len(rows["rd"]) == 2  # --quick: 0.5 and 1 bpv
    for r in rows["rd"]:
        assert r["htj2k"] is not None and 20 < r["htj2k"] < 90
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["rd_tiny.png", "strip_tiny.png"]
    for name in ("rd_tiny.png", "strip_tiny.png"):
        path = tmp_path / name
        assert path.read_bytes()[:8] == PNG
        img = mpl_image.imread(path)
        assert 300 < img.shape[0] < 1000 and 900 < img.shape[1] < 2000 and img.std() > 0.05
    orig, dec, err = _panels(mpl_image.imread(tmp_path / "strip_tiny.png"))
    assert all(p.std() > 0.05 for p in (orig, dec, err))  # none blank
    # original and decoded: grey images (R = G = B everywhere) alike at 1 bpv; the error
    # panel is another picture, in the magma colour map
    assert np.ptp(orig, axis=-1).max() < 0.02 and np.ptp(dec, axis=-1).max() < 0.02
    assert abs(orig.mean() - dec.mean()) < 0.01
    assert np.ptp(err, axis=-1).max() > 0.3 and np.abs(orig - err).mean() > 0.05
    assert not list(tmp_path.glob(".*")) and not list(tmp_path.glob("*.part"))


def test_bench_plot_curves_have_every_anchor(tmp_path, tiny_bench, monkeypatch):
    import wdrcodec.plots as plots

    seen: dict = {}

    def fake_figure(curves, path, title=""):
        seen.update(curves)
        return path

    monkeypatch.setattr(plots, "rd_figure", fake_figure)
    assert main(["bench", "--quick", "--sections", "rd", "--plots", str(tmp_path)]) == 0
    assert {"WDR-3D", "WDR-3D ctx", "WDR-2D", "WDR-MCPD"} <= set(seen)
    assert {"J2K (OpenJPEG, 2D)", "HTJ2K (OpenJPH, 2D)", "SPERR-3D"} <= set(seen)
    for name, pts in seen.items():
        assert pts, name
        assert all(0.5 / 1.5 <= b <= 1.5 and 15 < p < 100 and 0 < s <= 1 for b, p, s in pts)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--strip-bpv", "0"], "--strip-bpv"),
        (["--strip-bpv", "-1"], "--strip-bpv"),
        (["--strip-bpv", "nan"], "--strip-bpv"),
        (["--strip-bpv", "65"], "--strip-bpv"),
        (["--strip-bpv", "0.5,1"], "--strip-bpv"),
        (["--sections", "rd,fast"], "--sections"),
        (["--sections", ""], "--sections"),
        (["--plots", "{tmp}/absent"], "not an existing folder"),
        (["--plots", "{tmp}", "--sections", "speed"], "add rd to --sections"),
    ],
)
def test_bench_options_refused_before_any_work(tmp_path, monkeypatch, capsys, extra, fragment):
    import wdrcodec.bench as bench

    monkeypatch.setattr(bench, "run_bench", lambda **kw: pytest.fail("ran the benchmark"))
    argv = ["bench", *[a.replace("{tmp}", str(tmp_path)) for a in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]


def test_bench_refuses_a_symlink_at_a_picture_path(tmp_path, monkeypatch, capsys):
    import wdrcodec.bench as bench

    monkeypatch.setattr(bench, "run_bench", lambda **kw: pytest.fail("ran the benchmark"))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / bench.picture_paths(tmp_path)[1].name).symlink_to(victim)
    assert main(["bench", "--plots", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--plots" in err[0] and victim.read_text() == "keep"


def test_bench_sections_agree_with_the_cli():
    import wdrcodec.bench as bench
    from wdrcodec.cli import BENCH_SECTIONS

    assert BENCH_SECTIONS == bench.SECTIONS  # the CLI keeps a copy so --help stays fast
