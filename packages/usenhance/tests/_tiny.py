"""Tiny training setups shared by the training tests."""

from dataclasses import replace

import numpy as np

from usenhance.config import NetConfig, TrainConfig
from usenhance.phantom import ORGANS, SimConfig, simulate_pair
from usenhance.train import TrainingData


def tiny_config(model="cyclegan-perceptual", **changes):
    cfg = TrainConfig(model=model, crop=32, epochs=2, batch_size=4, lpips_random_backbone=True,
                      net=NetConfig(ngf=4, num_downs=3, ndf=4, d_layers=2), val_images=2)
    return replace(cfg, **changes)


def tiny_data(n=8, size=40):
    cfg = SimConfig(shape=(size, size))
    pairs = [simulate_pair(ORGANS[i % 5], cfg, np.random.default_rng(i)) for i in range(n + 2)]
    return TrainingData([p.low for p in pairs[:n]], [p.high for p in pairs[:n]], True,
                        [p.low for p in pairs[n:]], [p.high for p in pairs[n:]])
