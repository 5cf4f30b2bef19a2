"""streamvq: whole-bundle streamline autoencoders (AE, VAE, VQ-VAE, VQ-EMA, VQ-Diff).

Public API (imported lazily, so ``import streamvq`` and ``streamvq --help`` stay fast)::

    from streamvq import prepare_synthetic, prepare_sources, sources_from_files
    from streamvq import read_dataset, write_dataset, ModelConfig, TrainConfig, PrepareConfig
    from streamvq import build_model, train_model, load_trained
    from streamvq import encode_file, decode_set, evaluate_models, perturbation_sweep
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("streamvq")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "ModelConfig": "config",
    "PrepareConfig": "config",
    "TrainConfig": "config",
    "EvalConfig": "config",
    "StreamvqError": "errors",
    "prepare_sources": "prepare",
    "prepare_synthetic": "prepare",
    "prepare_authors": "prepare",
    "sources_from_files": "prepare",
    "BundleSource": "prepare",
    "read_dataset": "dataset",
    "write_dataset": "dataset",
    "BundleDataset": "dataset",
    "build_model": "models",
    "BundleAutoencoder": "models",
    "train_model": "train",
    "load_trained": "train",
    "encode_file": "codec",
    "decode_set": "codec",
    "read_latents": "codec",
    "write_latents": "codec",
    "evaluate_models": "evaluate",
    "perturbation_sweep": "perturb",
    "synthetic_dataset": "synthetic",
    "read_authors_pt": "authors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamvq' has no attribute {name!r}")
    return getattr(importlib.import_module(f"streamvq.{module}"), name)
