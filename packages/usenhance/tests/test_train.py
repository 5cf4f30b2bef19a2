import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _tiny import tiny_config, tiny_data  # noqa: E402

from usenhance.errors import UsenhanceError  # noqa: E402
from usenhance.predict import load_enhancer  # noqa: E402
from usenhance.train import train  # noqa: E402


def _weights(run: Path) -> dict:
    payload = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    return payload["objects"]


def test_resume_is_bit_exact_with_epoch_and_scheduler(tmp_path):
    data = tiny_data()
    cfg = tiny_config(epochs=2, lr_step_epochs=1, lr_gamma=0.5)
    full = train(data, tmp_path / "full", cfg, device="cpu", quiet=True)
    part = train(data, tmp_path / "part", replace(cfg, epochs=1), device="cpu", quiet=True)
    assert part.epochs == 1
    res = train(data, tmp_path / "part", cfg, resume=True, device="cpu", quiet=True)
    assert res.epochs == 2 and res.steps == full.steps == 4
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    for name in ("generators", "discriminators"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)
    assert b["sched_g"]["last_epoch"] == 2 and b["sched_g"]["_last_lr"][0] == pytest.approx(3e-4 / 4)
    assert a["opt_d"]["state"][0]["step"] == b["opt_d"]["state"][0]["step"]
    meta = json.loads(torch.load(tmp_path / "part" / "last.pt", weights_only=True)["meta"])
    assert meta["epoch"] == 2 and meta["package"] == "usenhance"
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    # a changed configuration is refused on resume, naming the key
    with pytest.raises(Exception, match="lr"):
        train(data, tmp_path / "part", replace(cfg, lr=1e-3), resume=True, device="cpu", quiet=True)


@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
def test_baselines_train_and_export(tmp_path, model):
    res = train(tiny_data(), tmp_path / model, tiny_config(model, epochs=1), device="cpu", quiet=True)
    objs = _weights(tmp_path / model)
    has_gl = any(k.startswith("g_l.") for k in objs["generators"])
    assert has_gl == (model == "cyclegan")
    enh = load_enhancer(res.export)
    assert enh.meta["model"] == model and enh.multiple == 8
    import numpy as np

    img = np.random.default_rng(0).random((37, 45)).astype(np.float32)
    out = enh(img)
    assert out.shape == img.shape and 0 <= out.min() and out.max() <= 1


def test_wrong_checkpoints_get_clear_errors(tmp_path):
    res = train(tiny_data(), tmp_path / "r", tiny_config("cyclegan", epochs=1), device="cpu", quiet=True)
    with pytest.raises(UsenhanceError, match="generator_h2l.safetensors degrades"):
        load_enhancer(tmp_path / "r" / "generator_h2l.safetensors")
    with pytest.raises(UsenhanceError, match="training state"):
        load_enhancer(tmp_path / "r" / "last.pt")
    from medshared.training import export_model
    from usenhance.models import UNetGenerator

    g3 = UNetGenerator(3, 3, ngf=4, num_downs=3)
    cfg3 = {"in_channels": 3, "out_channels": 3, "ngf": 4, "num_downs": 3, "dropout": 0.5,
            "n_dropout": 3}
    export_model(tmp_path / "rgb.safetensors", g3, package="usenhance", version="0",
                 kind="usenhance-generator-l2h", model_config=cfg3)
    with pytest.raises(UsenhanceError, match="3-channel"):
        load_enhancer(tmp_path / "rgb.safetensors")
    export_model(tmp_path / "other.safetensors", g3, package="flowsr", version="0",
                 kind="surfrnet", model_config=cfg3)
    with pytest.raises(UsenhanceError, match="flowsr"):
        load_enhancer(tmp_path / "other.safetensors")
    assert res.skipped_steps == 0


@pytest.mark.slow
def test_two_process_ddp_gives_identical_weights(tmp_path):
    worker = Path(__file__).parent / "_ddp_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", "2", str(worker), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and training moved them (not a no-op)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"] == "cyclegan"
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1]  # 8 images / (2 ranks x batch 4) = 1 iteration per epoch
