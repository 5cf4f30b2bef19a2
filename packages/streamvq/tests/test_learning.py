"""Guards against the "learns nothing" failure mode: a short run must really reconstruct."""

import pytest

from streamvq.config import ModelConfig, PrepareConfig, TrainConfig
from streamvq.evaluate import reconstruct
from streamvq.geometry import mdf
from streamvq.grouping import from_tensor_layout
from streamvq.prepare import prepare_synthetic
from streamvq.train import load_trained, train_model

# 16 streamlines x 16 points per group keeps this at a few seconds
SMALL = dict(hidden=16, residual_hidden=4, embedding_dim=8, codebook_size=16, streamlines=16,
             points=16)


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    # tiny convolutions gain nothing from a second thread, and lose a lot on a loaded machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data():
    return prepare_synthetic(2, 48, PrepareConfig(points=16, group_size=16, val_fraction=0.0),
                             seed=5)


def _mean_mdf_mm(data, run_dir, model: str, steps: int) -> float:
    res = train_model(data, run_dir, ModelConfig(model=model, **SMALL),  # type: ignore[arg-type]
                      TrainConfig(steps=steps, batch_size=8, lr=3e-3, log_every=steps,
                                  save_every=steps, seed=0), device="cpu", quiet=True)
    x = data.train.bundles
    r = reconstruct(load_trained(res.export), x)
    return float(mdf(data.norm.to_mm(from_tensor_layout(x)),
                     data.norm.to_mm(from_tensor_layout(r))).mean())


@pytest.mark.parametrize("model", ["ae", "vqdiff"])
def test_400_updates_bring_the_reconstruction_within_15_mm(tmp_path, data, model):
    # untrained decodes are ~54 mm off, 150 updates ~22 mm, 400 updates ~9-11 mm (measured)
    assert _mean_mdf_mm(data, tmp_path / "r1", model, 1) > 40.0
    assert _mean_mdf_mm(data, tmp_path / "r400", model, 400) < 15.0
