"""medshared.training: exact resume, DDP agreement, state round trips, safe loading, configs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

torch = pytest.importorskip("torch")

from medshared.errors import MedsharedError  # noqa: E402
from medshared.training import (  # noqa: E402
    RunFolder,
    add_config_arguments,
    config_from_args,
    config_from_dict,
    config_to_dict,
    export_model,
    launch,
    load_model_export,
    load_state,
    optimizer_step,
    save_state,
)

sys.path.insert(0, str(Path(__file__).parent))
import _training_toy as toy  # noqa: E402


def _equal_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_killed_and_resumed_run_is_bit_identical(tmp_path: Path) -> None:
    cfg = toy.ToyConfig(steps=14, save_every=3)
    full, _ = toy.train(tmp_path / "full", cfg)
    with pytest.raises(toy.Stop):
        toy.train(tmp_path / "cut", cfg, crash_at=8)  # last saved at step 6; step 7-8 lost
    resumed, _ = toy.train(tmp_path / "cut", cfg, resume=True)
    assert _equal_state(full.state_dict(), resumed.state_dict())
    lines_full = [json.loads(x) for x in (tmp_path / "full/metrics.jsonl").read_text().splitlines()]
    lines_cut = [json.loads(x) for x in (tmp_path / "cut/metrics.jsonl").read_text().splitlines()]
    assert lines_full == lines_cut  # the interrupted run's extra lines were dropped on resume
    assert [r["step"] for r in lines_full] == list(range(1, 15))


def test_resume_refuses_changed_config_naming_keys(tmp_path: Path) -> None:
    cfg = toy.ToyConfig(steps=3, save_every=3)
    toy.train(tmp_path / "r", cfg)
    with pytest.raises(MedsharedError, match="differs .* in lr, steps"):
        RunFolder(tmp_path / "r", config_to_dict(dataclasses.replace(cfg, lr=1.0, steps=9)), resume=True)
    RunFolder(tmp_path / "r", config_to_dict(dataclasses.replace(cfg, steps=9)), resume=True,
              allow_changes=("steps",))
    with pytest.raises(MedsharedError, match="already holds a training run"):
        RunFolder(tmp_path / "r", config_to_dict(cfg))
    with pytest.raises(MedsharedError, match="no run here"):
        RunFolder(tmp_path / "empty", config_to_dict(cfg), resume=True)


def test_two_process_gloo_run_ends_with_identical_weights(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
         str(Path(__file__).parent / "_training_toy.py"), str(tmp_path), "6"],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = torch.load(tmp_path / "weights_rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "weights_rank1.pt", weights_only=True)
    assert _equal_state(w0, w1)
    torch.manual_seed(3)
    start = toy.Toy()
    assert not _equal_state(start.state_dict(), w0)  # it did train
    # only rank 0 wrote: one metrics line per step, each the mean loss over both ranks
    lines = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6


def test_state_of_two_models_optimisers_schedulers_and_scaler_round_trips(tmp_path: Path) -> None:
    def build():
        torch.manual_seed(0)
        g, d = torch.nn.Linear(3, 3), torch.nn.Conv2d(1, 2, 3)
        og, od = torch.optim.Adam(g.parameters(), 1e-2), torch.optim.Adam(d.parameters(), 2e-2)
        sg = torch.optim.lr_scheduler.StepLR(og, 2, 0.5)
        sd = torch.optim.lr_scheduler.CosineAnnealingLR(od, 10)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        return {"G": g, "D": d, "opt_G": og, "opt_D": od, "sched_G": sg, "sched_D": sd,
                "scaler": scaler}

    a = build()
    for _ in range(3):
        optimizer_step(a["G"](torch.randn(2, 3)).sum(), a["opt_G"])
        optimizer_step(a["D"](torch.randn(1, 1, 5, 5)).sum(), a["opt_D"])
        a["sched_G"].step()
        a["sched_D"].step()
    torch.manual_seed(123)
    save_state(tmp_path / "s.pt", a, {"epoch": 3, "package": "x", "seed": 1})
    expected_draw = torch.rand(3)
    b = build()
    meta = load_state(tmp_path / "s.pt", b)
    assert meta == {"epoch": 3, "package": "x", "seed": 1}
    assert torch.equal(torch.rand(3), expected_draw)  # torch RNG restored
    for k in ("G", "D"):
        assert _equal_state(a[k].state_dict(), b[k].state_dict())
    for k in ("opt_G", "opt_D"):
        sa, sb = a[k].state_dict(), b[k].state_dict()
        assert sa["param_groups"] == sb["param_groups"]
        for pid in sa["state"]:
            assert _equal_state(sa["state"][pid], sb["state"][pid])
    assert b["sched_G"].get_last_lr() == a["sched_G"].get_last_lr()
    assert b["sched_D"].state_dict() == a["sched_D"].state_dict()
    with pytest.raises(MedsharedError, match="holds no state for extra"):
        load_state(tmp_path / "s.pt", {**b, "extra": torch.nn.Linear(1, 1)})
    with pytest.raises(MedsharedError, match="state of 'G' does not fit"):
        load_state(tmp_path / "s.pt", {**b, "G": torch.nn.Linear(4, 4)})


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/medshared-pwned",))


def test_file_that_executes_code_on_unpickling_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "last.pt"
    torch.save({"format": "medshared.training-state/1", "x": _Evil()}, bad)
    with pytest.raises(MedsharedError, match="refused: loading it would need unpickling"):
        load_state(bad, {})
    assert not Path("/tmp/medshared-pwned").exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(MedsharedError):
        load_state(raw, {})
    (tmp_path / "junk.pt").write_bytes(os.urandom(256))
    with pytest.raises(MedsharedError, match="junk.pt"):
        load_state(tmp_path / "junk.pt", {})


def test_ddp_and_compile_wrappers_are_unwrapped_and_exports_check_kind(tmp_path: Path) -> None:
    net = torch.nn.Linear(2, 2)
    with launch(device="cpu") as rt:
        wrapped = rt.wrap(net)
    save_state(tmp_path / "a.pt", {"m": wrapped}, {})
    other = torch.nn.Linear(2, 2)
    load_state(tmp_path / "a.pt", {"m": other})
    assert torch.equal(other.weight, net.weight)
    export_model(tmp_path / "m.safetensors", net, package="toy", version="1", kind="ae",
                 model_config={"dim": 2})
    got = load_model_export(tmp_path / "m.safetensors", package="toy", kinds=("ae", "vae"))
    assert got.model_config == {"dim": 2} and got.kind == "ae"
    assert torch.equal(got.state_dict["weight"], net.weight.detach())
    with pytest.raises(MedsharedError, match="'ae' model; this command needs vqvae"):
        load_model_export(tmp_path / "m.safetensors", package="toy", kinds="vqvae")
    with pytest.raises(MedsharedError, match="is a 'toy' model, not a other model"):
        load_model_export(tmp_path / "m.safetensors", package="other")


def test_optimizer_step_skips_non_finite_updates() -> None:
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = net.weight.detach().clone()
    out = optimizer_step(net(torch.tensor([[float("nan"), 1.0]])).sum(), opt)
    assert out.skipped and torch.equal(net.weight, before)
    out = optimizer_step(net(torch.ones(1, 2)).sum() * 100, opt, clip_grad_norm=1.0)
    assert not out.skipped and out.grad_norm == pytest.approx(100 * (3**0.5), rel=1e-5)
    # clipped to total norm 1, so plain SGD moves the weights by at most lr * 1
    assert float(torch.linalg.vector_norm(net.weight.detach() - before)) <= 0.1 + 1e-6


@dataclasses.dataclass(frozen=True)
class _Inner:
    hidden: int = dataclasses.field(default=8, metadata={"help": "channels", "min": 1})


@dataclasses.dataclass(frozen=True)
class _Cfg:
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "learning rate", "min": 0.0})
    amp: bool = True
    model: Literal["ae", "vae"] = "ae"
    size: tuple[int, int] = (64, 32)
    out: Path | None = None
    inner: _Inner = dataclasses.field(default_factory=_Inner)


def test_config_flags_round_trip_and_validation(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="t")
    add_config_arguments(parser, _Cfg)
    args = parser.parse_args(["--lr", "0.5", "--no-amp", "--model", "vae", "--size", "8", "4",
                              "--inner-hidden", "3"])
    cfg = config_from_args(_Cfg, args)
    assert cfg == _Cfg(lr=0.5, amp=False, model="vae", size=(8, 4), inner=_Inner(3))
    assert config_from_dict(_Cfg, json.loads(json.dumps(config_to_dict(cfg)))) == cfg
    assert config_from_args(_Cfg, parser.parse_args([])) == _Cfg()
    for bad, message in (
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--lr", "-1"], "--lr must be >= 0.0"),
        (["--inner-hidden", "0"], "--inner-hidden must be >= 1"),
        (["--model", "x"], "invalid choice"),
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
        assert message in capsys.readouterr().err
    helptext = parser.format_help()
    assert "learning rate (default: 0.001)" in helptext and "(default: 64,32)" in helptext
    with pytest.raises(MedsharedError, match="unknown configuration keys bogus"):
        config_from_dict(_Cfg, {"bogus": 1})


def test_other_ranks_do_not_refuse_the_folder_rank0_just_created(tmp_path: Path) -> None:
    cfg = config_to_dict(toy.ToyConfig())
    RunFolder(tmp_path / "r", cfg, is_main=True)
    other = RunFolder(tmp_path / "r", cfg, is_main=False)  # rank 1 arriving late
    other.log(1, loss=0.5)
    assert not (tmp_path / "r" / "metrics.jsonl").exists()  # only rank 0 writes
