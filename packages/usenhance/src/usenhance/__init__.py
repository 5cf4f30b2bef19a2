"""usenhance: handheld-to-high-end ultrasound enhancement (CycleGAN + paired L1 + LPIPS).

Public API (imported lazily, so ``import usenhance`` stays cheap)::

    from usenhance import SimConfig, simulate_pair        # B-mode simulator
    from usenhance import TrainConfig                     # training config (three models)
    from usenhance.train import train                     # training
    from usenhance import load_enhancer, enhance_files    # inference, PNG/DICOM
    from usenhance import evaluate_models, build_lpips    # paired evaluation
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("usenhance")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "SimConfig": "phantom",
    "DeviceModel": "phantom",
    "simulate_pair": "phantom",
    "TrainConfig": "config",
    "NetConfig": "config",
    "LossWeights": "config",
    "load_enhancer": "predict",
    "enhance_files": "predict",
    "evaluate_models": "evaluate",
    "image_metrics": "evaluate",
    "build_lpips": "perceptual",
    "read_image": "imageio",
    "write_image": "imageio",
    "UsenhanceError": "errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'usenhance' has no attribute {name!r}")
    return getattr(importlib.import_module(f"usenhance.{module}"), name)


def __dir__() -> list[str]:
    return __all__
