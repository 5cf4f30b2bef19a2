"""Learned AIF training: run folder, exact resume, configuration errors, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medshared.errors import MedsharedError
from perfdecon.datasets import PhantomDataset
from perfdecon.errors import PerfdeconError
from perfdecon.objective import case_loss
from perfdecon.predict import load_aif_model
from perfdecon.train import TrainConfig, main, train
from perfdecon.train_config import AIFNetOptions

TINY = dict(
    data="phantom",
    cases=3,
    size=32,
    n_slices=2,
    n_frames=20,
    folds=3,
    fold=1,
    lr=0.05,
    model=AIFNetOptions(channels_3d=(4,), channels_2d=(8,), dropout=0.1),
    device="cpu",
    progress=False,
    seed=11,
)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_matches_uninterrupted_run(tmp_path):
    full = train(TrainConfig(**TINY, epochs=2, out=str(tmp_path / "full")))
    assert full.epochs_done == 2 and full.steps == 4  # 2 training cases x 2 epochs
    run = tmp_path / "resumed"
    first = train(TrainConfig(**TINY, epochs=1, out=str(run)))
    assert first.steps == 2
    with pytest.raises(MedsharedError, match="--resume"):
        train(TrainConfig(**TINY, epochs=2, out=str(run)))
    with pytest.raises(MedsharedError, match="differs from the saved one in lr"):
        train(TrainConfig(**{**TINY, "lr": 0.1}, epochs=2, out=str(run), resume=True))
    resumed = train(TrainConfig(**TINY, epochs=2, out=str(run), resume=True))
    assert resumed.steps == 4
    a, b = _weights(full.model), _weights(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)

    def strip(history):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history]

    assert strip(resumed.history) == strip(full.history)

    # Run folder: config, split, metrics and an export that rebuilds the trained model.
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["seed"] == 11 and cfg["package"] == "perfdecon"
    split = json.loads((run / "split.json").read_text())
    assert split["model_config"]["n_frames"] == 20
    assert split["val_cases"] and not set(split["val_cases"]) & set(split["train_cases"])
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2] and [m["step"] for m in metrics] == [2, 4]
    assert all(0 <= m["val_dice"] <= 1 and 0 <= m["train_loss"] <= 1 for m in metrics)
    # The last epoch's validation figures are the mean over the validation cases of the
    # trained model's case loss (recomputed here in eval mode, no augmentation).
    data = PhantomDataset(3, seed=11, size=32, n_slices=2, n_frames=20)
    resumed.model.eval()
    with torch.no_grad():
        outs = [
            case_loss(resumed.model, data[i], "cpu", 0.3, 0.1, 1.5, 1.0)
            for i in split["val_cases"]
        ]
    assert metrics[-1]["val_loss"] == pytest.approx(
        np.mean([float(o.loss) for o in outs]), abs=1e-6
    )
    assert metrics[-1]["val_dice"] == pytest.approx(np.mean([o.dice for o in outs]), abs=1e-9)
    model, meta = load_aif_model(resumed.export)
    assert meta["epoch"] == 2 and meta["step"] == 4 and meta["seed"] == 11
    assert meta["kind"] == "AIFNet" and meta["package"] == "perfdecon"
    for k, v in model.state_dict().items():
        assert torch.equal(v, b[k])
    assert {"last.pt", "best.pt", "final.pt", "model.safetensors"} <= {p.name for p in run.iterdir()}

    # the paper's linear-output model drives `maps --aif-model` end to end
    from perfdecon.cli import main as cli_main
    from perfdecon.phantom_job import PhantomSpec, write_phantom

    write_phantom(tmp_path / "ph", PhantomSpec(seed=2, slices=2, size=48, frames=20))
    rc = cli_main(["maps", str(tmp_path / "ph" / "ctp.nii.gz"), "--out", str(tmp_path / "m"),
                   "--aif-model", str(resumed.export), "--quiet", "--no-figures"])
    assert rc == 0
    s = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert s["aif"]["source"] == "model" and s["calibrated"] is False
    assert "not calibrated" in s["calibration_note"]
    assert not list(run.glob("*.part*"))


def test_train_config_errors(tmp_path):
    bad = [
        (dict(data="mri"), "--data must be"),
        (dict(data="isles"), "needs the ISLES18"),
        (dict(cases=0), "--cases"),
        (dict(epochs=0), "--epochs"),
        (dict(lr=-1.0), "--lr"),
        (dict(momentum=1.0), "--momentum"),
        (dict(folds=3, fold=3), "--fold"),
        (dict(device="tpu"), "--device"),
    ]
    for kw, msg in bad:
        with pytest.raises(PerfdeconError, match=msg):
            TrainConfig(**{**TINY, **kw})
    with pytest.raises(PerfdeconError, match="--channels"):
        AIFNetOptions(channels_3d=())
    with pytest.raises(PerfdeconError, match="--dropout"):
        AIFNetOptions(dropout=1.0)
    with pytest.raises(PerfdeconError, match="no case_N|does not exist"):
        train(
            TrainConfig(
                **{**TINY, "data": "isles", "data_dir": str(tmp_path)}, out=str(tmp_path / "r")
            )
        )
    with pytest.raises(PerfdeconError, match="folds"):
        train(TrainConfig(**{**TINY, "cases": 2, "folds": 3, "fold": 0}, out=str(tmp_path / "r2")))


def test_cli_errors_and_flags(tmp_path, capsys):
    assert main(["--data", "isles", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "--data-dir" in err and len(err.strip().splitlines()) == 1
    assert main(["--device", "tpu"]) == 2
    assert main(["--epochs", "0"]) == 2  # validated when parsed
    assert "--epochs must be >= 1" in capsys.readouterr().err
    assert main(["--lr", "nan"]) == 2
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["--out", str(f)]) == 2  # --out is a file: refused before any work
    assert "not a folder" in capsys.readouterr().err
    blocked = tmp_path / "blocked"
    (blocked / "last.pt").mkdir(parents=True)
    assert main(["--out", str(blocked)]) == 2
    assert "last.pt" in capsys.readouterr().err
    out = tmp_path / "cli"
    rc = main(
        [
            "--data",
            "phantom",
            "--cases",
            "2",
            "--size",
            "32",
            "--slices",
            "2",
            "--frames",
            "16",
            "--epochs",
            "1",
            "--folds",
            "1",
            "--channels-3d",
            "4",
            "--channels-2d",
            "8",
            "--non-negative",
            "--out",
            str(out),
            "--no-progress",
            "--seed",
            "3",
        ]
    )
    assert rc == 0
    assert "trained 1 epochs (2 steps)" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["n_frames"] == 16 and cfg["folds"] == 1 and not cfg["progress"]
    assert cfg["model"] == {"channels_3d": [4], "channels_2d": [8], "dropout": 0.1,
                            "non_negative": True, "head": "fc", "input_percentile": 50.0}
    # config.json alone rebuilds the run's configuration.
    from medshared.training import config_from_dict

    cfg.pop("package")
    assert config_from_dict(TrainConfig, cfg).to_dict() == cfg
    model, _ = load_aif_model(out / "model.safetensors")
    assert model.config.non_negative and model.config.n_frames == 16
