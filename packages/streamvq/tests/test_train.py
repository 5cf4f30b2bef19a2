import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from streamvq.config import ModelConfig, PrepareConfig, TrainConfig
from streamvq.errors import StreamvqError
from streamvq.prepare import prepare_synthetic
from streamvq.train import load_trained, train_model

TINY = dict(hidden=8, residual_hidden=4, embedding_dim=4, codebook_size=8)


@pytest.fixture(scope="module")
def data():
    return prepare_synthetic(3, (40, 90), PrepareConfig(val_fraction=0.34), seed=2)


def _weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


@pytest.mark.parametrize("model", ["vqdiff", "vqema"])
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, data, model):
    mc = ModelConfig(model=model, **TINY)
    full = train_model(data, tmp_path / "full", mc,
                       TrainConfig(steps=6, batch_size=4, log_every=2, save_every=3, seed=5),
                       device="cpu", quiet=True)
    # "killed" after 3 updates (its last.pt is at step 3), then resumed to 6
    train_model(data, tmp_path / "part", mc,
                TrainConfig(steps=3, batch_size=4, log_every=2, save_every=3, seed=5),
                device="cpu", quiet=True)
    resumed = train_model(data, tmp_path / "part", mc,
                          TrainConfig(steps=6, batch_size=4, log_every=2, save_every=3, seed=5),
                          resume=True, device="cpu", quiet=True)
    a, b = _weights(full.export), _weights(resumed.export)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert full.final_loss == resumed.final_loss


def test_metrics_log_codebook_usage(tmp_path, data):
    train_model(data, tmp_path / "r", ModelConfig(model="vqvae", **TINY),
                TrainConfig(steps=4, batch_size=4, log_every=2, save_every=4),
                device="cpu", quiet=True)
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if "loss" in r]
    assert [r["step"] for r in train_lines] == [2, 4]
    for r in train_lines:
        assert 1.0 <= r["perplexity"] <= 8.0 and 0 <= r["dead_codes"] <= 7
    assert any("val_mse" in r for r in lines)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["model"]["model"] == "vqvae" and cfg["train"]["steps"] == 4


def test_training_reduces_the_loss(tmp_path, data):
    res = train_model(data, tmp_path / "r", ModelConfig(model="ae", **TINY),
                      TrainConfig(steps=30, batch_size=8, log_every=5, save_every=30, lr=3e-3),
                      device="cpu", quiet=True)
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in lines if "loss" in r]
    assert losses[-1] < 0.75 * losses[0]
    assert res.skipped == 0


def test_export_kind_and_package_are_checked(tmp_path, data):
    res = train_model(data, tmp_path / "r", ModelConfig(model="ae", **TINY),
                      TrainConfig(steps=1, batch_size=4), device="cpu", quiet=True)
    m = load_trained(res.export)
    assert m.kind == "ae" and m.norm.hi > m.norm.lo
    assert load_trained(tmp_path / "r").kind == "ae"  # run folder accepted
    from medshared.errors import MedsharedError

    with pytest.raises(MedsharedError, match="needs vqdiff"):
        load_trained(res.export, kinds=("vqdiff",))
    import torch

    from medshared.training import export_model

    export_model(tmp_path / "other.safetensors", torch.nn.Linear(2, 2), package="flowsr",
                 version="0", kind="ae", model_config={})
    with pytest.raises(MedsharedError, match="not a streamvq model"):
        load_trained(tmp_path / "other.safetensors")


def test_existing_run_folder_is_not_overwritten(tmp_path, data):
    cfg = (ModelConfig(model="ae", **TINY), TrainConfig(steps=1, batch_size=4))
    train_model(data, tmp_path / "r", *cfg, device="cpu", quiet=True)
    from medshared.errors import MedsharedError

    with pytest.raises(MedsharedError, match="already holds a training run"):
        train_model(data, tmp_path / "r", *cfg, device="cpu", quiet=True)


def test_model_shape_must_match_dataset(tmp_path, data):
    with pytest.raises(StreamvqError, match="expects"):
        train_model(data, tmp_path / "r", ModelConfig(model="ae", points=32, **TINY),
                    TrainConfig(steps=1), device="cpu", quiet=True)


SCRIPT = textwrap.dedent("""
    import os, sys
    import torch
    torch.set_num_threads(1)
    from streamvq.config import ModelConfig, TrainConfig
    from streamvq.dataset import read_dataset
    from streamvq.train import train_model
    data = read_dataset(sys.argv[1])
    mc = ModelConfig(model=sys.argv[3], hidden=8, residual_hidden=4, embedding_dim=4,
                     codebook_size=8)
    res = train_model(data, sys.argv[2], mc,
                      TrainConfig(steps=3, batch_size=4, log_every=1, save_every=3),
                      device="cpu", quiet=True)
    rank = os.environ.get("RANK", "0")
    folder = os.path.dirname(sys.argv[2])
    open(os.path.join(folder, f"digest_{rank}.txt"), "w").write(res.weights_sha256)
""")


@pytest.mark.parametrize(
    "model", ["vqema", pytest.param("vqdiff", marks=pytest.mark.slow)]
)
def test_two_process_ddp_ranks_end_with_identical_weights(tmp_path, data, model):
    from streamvq.dataset import write_dataset

    write_dataset(tmp_path / "d.h5", data)
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(29500 + os.getpid() % 1000 + (model == "vqema")), str(script),
         str(tmp_path / "d.h5"), str(tmp_path / "run"), model],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    d0 = (tmp_path / "digest_0.txt").read_text()
    d1 = (tmp_path / "digest_1.txt").read_text()
    assert d0 == d1
    assert (tmp_path / "run" / "model.safetensors").is_file()
