"""Seeds for python, numpy and torch, and per-worker seeding of DataLoader workers."""

from __future__ import annotations

import random

import numpy as np

from medshared.training._torch import torch as _torch


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy's legacy global generator and torch (CPU and every CUDA device).

    Libraries should prefer explicit ``np.random.Generator``/``torch.Generator`` objects; this
    covers the code that still draws from the global generators (e.g. dropout, weight init).
    """
    torch = _torch()
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoader: derive python/numpy seeds from the worker's torch seed.

    torch seeds each worker with ``base_seed + worker_id`` where ``base_seed`` comes from the
    loader's generator, so worker randomness is reproducible whenever the generator is.
    """
    torch = _torch()
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
