"""Learned AIF quality on held-out phantom cases (slow: trains for ~1-2 minutes on 2 CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medshared.metrics import dice
from perfdecon.aif import auto_aif
from perfdecon.maps import soft_core_from_aif
from perfdecon.phantom import brain_case
from perfdecon.pipeline import PipelineConfig, apply_smoothing, to_concentration
from perfdecon.predict import predict_aif
from perfdecon.train import TrainConfig, train


def _core_dice(smoothed, aif, dt, brain, truth):
    prob = soft_core_from_aif(
        torch.from_numpy(smoothed),
        torch.as_tensor(np.asarray(aif, np.float32)),
        dt,
        torch.from_numpy(brain),
    )
    # sigmoid > 0.5 <=> rCBF < 0.38, the pipeline's hard core rule.
    return float(dice((prob > 0.5).numpy() & brain, truth))


@pytest.mark.slow
def test_learned_aif_beats_automatic_aif_on_held_out_phantoms(tmp_path):
    res = train(
        TrainConfig(
            data="phantom", cases=12, epochs=10, folds=1, lr=0.05, seed=0, device="cpu",
            progress=False, out=str(tmp_path / "run"),
        )
    )  # fmt: skip
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    cfg = PipelineConfig()
    learned, auto, true = [], [], []
    for i in range(4):
        case = brain_case(np.random.default_rng([10_000, i]), size=64, n_slices=4, n_frames=50)
        conc, brain = to_concentration(case.ctp_hu, cfg)
        sm = apply_smoothing(conc, cfg, brain)
        a = predict_aif(res.model, conc, brain_mask=brain, allow_nonpositive_area=True)
        learned.append(_core_dice(sm, a, case.dt, brain, case.core_mask))
        auto.append(
            _core_dice(sm, auto_aif(conc, case.dt, brain).curve, case.dt, brain, case.core_mask)
        )
        true.append(_core_dice(sm, case.aif, case.dt, brain, case.core_mask))
    assert np.mean(learned) > np.mean(auto), (learned, auto, true)
