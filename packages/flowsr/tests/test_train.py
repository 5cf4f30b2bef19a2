"""Training through medshared.training: exact resume, 2-rank DDP, export round trip."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from flowsr.config import ModelConfig, PatchConfig, TrainConfig
from flowsr.errors import FlowsrError
from flowsr.train import load_trained, train

TINY = ModelConfig(channels=4, groups=1, blocks=1, reduction=2)
PATCH = PatchConfig(size_x=8, size_y=8, size_z=4, cfd_per_frame=2, cfd_covered=2, mri_per_frame=1)


@pytest.fixture(scope="module")
def series(small_config):
    from flowsr.workflows import phantom_training_set

    return phantom_training_set([3], [4], small_config)


def _cfg(**kw):
    base = dict(model=TINY, batch_size=4, steps=4, lr=1e-3, log_every=1, save_every=2,
                device="cpu", seed=7)
    base.update(kw)
    return TrainConfig(**base)


class _Kill(Exception):
    pass


def _weights(path):
    return {k: v.clone() for k, v in load_trained(path).state_dict().items()}


def test_killed_run_resumes_bit_identically(series, tmp_path):
    full = train(_cfg(), series, tmp_path / "full", patch=PATCH, quiet=True)

    def kill(step, loss):
        if step == 3:
            raise _Kill

    with pytest.raises(_Kill):
        train(_cfg(), series, tmp_path / "cut", patch=PATCH, quiet=True, on_step=kill)
    assert (tmp_path / "cut" / "last.pt").is_file()
    with pytest.raises(FlowsrError.__mro__[1], match="already holds a training run"):
        train(_cfg(), series, tmp_path / "cut", patch=PATCH, quiet=True)
    resumed = train(_cfg(), series, tmp_path / "cut", patch=PATCH, quiet=True, resume=True)
    assert resumed.steps == full.steps == 4
    a, b = _weights(full.export), _weights(resumed.export)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log_a = (tmp_path / "full" / "metrics.jsonl").read_text()
    log_b = (tmp_path / "cut" / "metrics.jsonl").read_text()
    assert log_a == log_b
    with pytest.raises(FlowsrError.__mro__[1], match="lr"):
        train(_cfg(lr=0.5), series, tmp_path / "cut", patch=PATCH, quiet=True, resume=True)


def test_training_reduces_the_loss_and_exports(series, tmp_path):
    res = train(_cfg(steps=12, save_every=100, lr=3e-3), series, tmp_path / "r", patch=PATCH,
                quiet=True)
    import json

    log = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    first = np.mean([r["loss"] for r in log[:3]])
    last = np.mean([r["loss"] for r in log[-3:]])
    assert last < first
    model = load_trained(res.export)
    assert model.config == TINY
    from medshared.errors import MedsharedError
    from medshared.training import export_model

    export_model(tmp_path / "other.safetensors", model, package="streamvq", version="0",
                 kind="surfrnet", model_config={})
    with pytest.raises(MedsharedError, match="not a flowsr model"):
        load_trained(tmp_path / "other.safetensors")


def test_wmf_model_on_single_frame_data_is_a_clear_error(small_config, tmp_path):
    from dataclasses import replace

    from flowsr.workflows import phantom_training_set

    one = phantom_training_set([3], [], replace(small_config, frames=1))
    with pytest.raises(FlowsrError, match="time axis"):
        train(_cfg(steps=1), one, tmp_path / "w", patch=PATCH, quiet=True)
    sr_only = replace(TINY, use_wmf=False, segmentation=False)
    res = train(_cfg(steps=1, model=sr_only), one, tmp_path / "s", patch=PATCH, quiet=True)
    assert res.steps == 1


DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from flowsr.config import ModelConfig, PatchConfig, PhantomConfig, TrainConfig
    from flowsr.train import train
    from flowsr.workflows import phantom_training_set
    import torch.distributed as dist
    out = sys.argv[1]
    cfg = PhantomConfig(shape_x=64, shape_y=64, shape_z=32, voxel_mm=2.0, frames=4)
    series = phantom_training_set([3], [4], cfg)
    patch = PatchConfig(size_x=8, size_y=8, size_z=4, cfd_per_frame=2, cfd_covered=2,
                        mri_per_frame=1)
    tc = TrainConfig(model=ModelConfig(channels=4, groups=1, blocks=1, reduction=2),
                     batch_size=4, steps=3, lr=1e-2, log_every=1, save_every=100,
                     device="cpu", seed=1)
    res = train(tc, series, out, patch=patch, quiet=True)
    import os
    rank = int(os.environ["RANK"])
    torch.save({k: v.contiguous() for k, v in res.model.state_dict().items()},
               f"{out}/../rank{rank}.pt")
    """
)


def test_torchrun_two_ranks_gloo(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29613", str(script), str(out)],
        capture_output=True, text=True, timeout=280, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model.safetensors").is_file()
    import json

    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    # DDP all-reduces the gradients: both ranks end with identical weights, which moved
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    init = _weights_init()
    assert any(not torch.equal(w0[k], init[k]) for k in init)


def _weights_init():
    from flowsr.models import build_model
    from medshared.training import seed_everything

    seed_everything(1)
    return dict(build_model(ModelConfig(channels=4, groups=1, blocks=1, reduction=2)).state_dict())


def test_segmentation_learns_on_a_tiny_phantom(small_config, tmp_path):
    """The BCE term must fall well below that of the best constant prediction (the fluid
    fraction), which is where a network stuck at 'all background' stays (the failure mode the
    random-initialised velocity heads caused; measured 0.70 -> 0.70 with them)."""
    import json

    from flowsr.workflows import phantom_training_set

    series = phantom_training_set([3], [4], small_config)
    patch = PatchConfig(size_x=8, size_y=8, size_z=4, cfd_per_frame=4, cfd_covered=4,
                        mri_per_frame=2)
    cfg = _cfg(model=ModelConfig(channels=8, groups=1, blocks=1, reduction=2), batch_size=8,
               steps=80, lr=3e-3, log_every=5, save_every=1000, seed=0)
    torch.set_num_threads(1)
    train(cfg, series, tmp_path / "r", patch=patch, quiet=True)
    log = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    from flowsr.datasets import PatchDataset, build_index

    index = build_index(series, patch, np.random.default_rng(0))
    ds = PatchDataset(series, index, patch, True)
    p = float(np.mean([ds[i]["seg"].mean().item() for i in range(len(ds))]))
    prior = -(p * np.log(p) + (1 - p) * np.log(1 - p))  # BCE of the constant prediction p
    last = float(np.mean([r["bce"] for r in log[-3:]]))
    assert log[0]["bce"] > 0.9 * prior
    assert last < 0.7 * prior, (last, prior, [r["bce"] for r in log])
