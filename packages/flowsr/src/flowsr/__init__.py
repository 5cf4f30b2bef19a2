"""flowsr: 4D flow MRI 2x super-resolution and vessel segmentation (SURFR-Net + WMF).

Public API (imported lazily, so ``import flowsr`` and ``flowsr --help`` stay fast)::

    from flowsr import make_phantom, downsample, wmf_min, SURFRNet, train, predict_series
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("flowsr")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "make_phantom": "phantom",
    "FlowPhantom": "phantom",
    "downsample": "downsample",
    "LowRes": "downsample",
    "wmf_min": "wmf",
    "wmf_feature": "wmf",
    "weighted_mean_frequency": "wmf",
    "FlowFile": "flowio",
    "FlowSeries": "flowio",
    "read_flow_h5": "flowio",
    "write_flow_h5": "flowio",
    "read_flow_nifti": "flowio",
    "write_flow_nifti": "flowio",
    "SURFRNet": "models",
    "build_model": "models",
    "surfr_loss": "losses",
    "train": "train",
    "load_trained": "train",
    "predict_series": "predict",
    "interpolate": "baselines",
    "frame_metrics": "metrics",
    "flow_rate": "flow",
    "peak_velocity": "flow",
    "FlowsrError": "errors",
}
__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowsr' has no attribute {name!r}")
    return getattr(importlib.import_module(f"flowsr.{module}"), name)
