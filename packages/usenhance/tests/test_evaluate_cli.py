import json
import math

import numpy as np
import pytest

from medshared.metrics import lncc, psnr, ssim
from usenhance.cli import main
from usenhance.evaluate import image_metrics, wilcoxon_better


def test_conventions_match_medshared_calls():
    rng = np.random.default_rng(0)
    ref = rng.random((40, 40)) * 0.6 + 0.2
    test = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    ch = image_metrics(ref, test, "challenge")
    joint = max(ref.max(), test.max()) - min(ref.min(), test.min())
    assert ch["SSIM"] == pytest.approx(ssim(ref, test, data_range=joint))
    assert ch["PSNR"] == pytest.approx(psnr(ref, test, data_range=joint))
    assert ch["LNCC"] == pytest.approx(lncc(ref, test, window=11))
    pa = image_metrics(ref, test, "paper")
    assert pa["PSNR"] == pytest.approx(psnr(ref, test, data_range=1.0))  # 8-bit scale cancels
    assert ch["PSNR"] < pa["PSNR"]  # joint range < 1: a lower peak, the same error
    same = image_metrics(ref, ref, "challenge")
    assert same["SSIM"] == pytest.approx(1.0) and math.isinf(same["PSNR"])


def test_wilcoxon_direction():
    rng = np.random.default_rng(1)
    base = rng.random(20)
    better = base + 0.1 + rng.random(20) * 0.01
    assert wilcoxon_better(better, base, higher_is_better=True) < 1e-3
    assert wilcoxon_better(base, better, higher_is_better=True) > 0.99
    # LPIPS: lower is better
    assert wilcoxon_better(base - 0.1, base, higher_is_better=False) < 1e-3
    assert wilcoxon_better(base, base, higher_is_better=True) == 1.0


def test_cli_help_version_and_bad_options(capsys, tmp_path):
    for cmd in (["--help"], ["train", "--help"], ["enhance", "--help"], ["evaluate", "--help"]):
        assert main(cmd) == 0
    assert main(["--version"]) == 0
    assert "usenhance" in capsys.readouterr().out
    assert main(["simulate", str(tmp_path / "x"), "--n", "0"]) == 2
    assert "argument --n: must be an integer >= 1" in capsys.readouterr().err
    assert main(["train", str(tmp_path), str(tmp_path / "r"), "--lr", "nan"]) == 2
    assert not (tmp_path / "r").exists()
    assert main(["enhance", str(tmp_path), str(tmp_path / "o"), "--ckpt", str(tmp_path / "no.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "no.safetensors" in err and "Traceback" not in err


def test_simulate_train_enhance_evaluate_end_to_end(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["simulate", str(data), "--n", "5", "--size", "40", "--organs", "liver,kidney",
                 "--bit-depth", "16", "--quiet"]) == 0
    run = tmp_path / "run"
    assert main(["train", str(data), str(run), "--model", "pix2pix", "--epochs", "1", "--crop", "32",
                 "--net-ngf", "4", "--net-num-downs", "3", "--net-ndf", "4", "--net-d-layers", "2",
                 "--device", "cpu", "--quiet"]) == 0
    ckpt = run / "generator.safetensors"
    (data / "kidney" / "low_quality" / "junk.png").write_bytes(b"junk")
    out = tmp_path / "enh"
    assert main(["enhance", str(data / "kidney" / "low_quality"), str(out), "--ckpt", str(ckpt),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "1 skipped" in captured.out and "junk.png" in captured.err
    from medshared.io import read_png

    img = read_png(out / "0000.png")
    assert img.dtype == np.uint16 and img.shape == (40, 40)
    ev = tmp_path / "ev"
    (data / "kidney" / "low_quality" / "junk.png").unlink()
    assert main(["evaluate", str(data), str(ev), "--ckpt", f"pix2pix={ckpt}", "--split", "all",
                 "--lpips-random-backbone"]) == 0
    res = json.loads((ev / "metrics.json").read_text())
    assert res["lpips_label"] == "LPIPS(random VGG)"
    assert set(res["summary"]["challenge"]["pix2pix"]) == {"liver", "kidney", "overall"}
    assert "reference-low" in res["pvalues"]["paper"]
    assert (ev / "grid_liver.png").is_file() and (ev / "table_challenge.txt").is_file()
    text = capsys.readouterr().out
    assert "LPIPS(random VGG)" in text and " LPIPS " not in text


def test_missing_lpips_weights_refused_before_any_run_folder(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["simulate", str(data), "--n", "3", "--size", "32", "--organs", "liver",
                 "--quiet"]) == 0
    run = tmp_path / "run"
    code = main(["train", str(data), str(run), "--lpips-weights", str(tmp_path / "none.pth"),
                 "--crop", "32", "--net-num-downs", "3", "--device", "cpu", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "vgg16-397923af.pth" in err and "none.pth" in err
    assert not run.exists()
