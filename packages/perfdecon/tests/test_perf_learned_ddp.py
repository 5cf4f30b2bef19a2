"""Learned AIF training under torchrun: 2 processes, gloo backend, weights stay identical."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from perfdecon.predict import load_aif_model

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from perfdecon.train import TrainConfig, train
    from perfdecon.train_config import AIFNetOptions

    out = sys.argv[1]
    cfg = TrainConfig(
        data="phantom", cases=4, size=32, n_slices=2, n_frames=16, folds=1, epochs=1,
        lr=0.05, model=AIFNetOptions(channels_3d=(4,), channels_2d=(8,), dropout=0.1),
        device="cpu",
        progress=False, seed=5, out=os.path.join(out, "run"),
    )
    res = train(cfg)
    rank = int(os.environ["RANK"])
    np.savez(
        os.path.join(out, f"rank{rank}.npz"),
        steps=res.steps,
        **{k: v.detach().numpy() for k, v in res.model.state_dict().items()},
    )
    """
)


@pytest.mark.timeout(240)
def test_ddp_two_processes_gloo(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(script),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=220,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = np.load(tmp_path / "rank0.npz")
    r1 = np.load(tmp_path / "rank1.npz")
    # 4 training cases sharded over 2 ranks: 2 steps each.
    assert int(r0["steps"]) == int(r1["steps"]) == 2
    names = [k for k in r0.files if k != "steps"]
    assert names
    for k in names:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
    # Only rank 0 wrote the run folder; its export holds the shared weights, which moved
    # away from the seeded initial weights.
    model, meta = load_aif_model(tmp_path / "run" / "model.safetensors")
    assert meta["step"] == 2
    moved = 0.0
    from perfdecon.models import AIFNet, AIFNetConfig
    from perfdecon.train import _seed_for

    torch.manual_seed(_seed_for(5, 7919))
    init = AIFNet(config=AIFNetConfig.from_dict(meta["model_config"])).state_dict()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), r0[k])
        moved += float((v - init[k]).abs().sum())
    assert moved > 0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.json",
        "final.pt",
        "last.pt",
        "metrics.jsonl",
        "model.safetensors",
        "split.json",
    ]
    assert '"world_size": 2' in (tmp_path / "run" / "split.json").read_text()
