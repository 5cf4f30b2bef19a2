"""perfdecon: perfusion maps by differentiable SVD deconvolution.

Public API (imported lazily: ``import perfdecon`` itself does not import torch)::

    from perfdecon import run_maps, MapsConfig, AifChoice      # one case -> map set on disk
    from perfdecon import discover_cases, run_cohort            # many cases, one process
    from perfdecon import write_phantom, PhantomSpec            # a phantom case on disk
    from perfdecon import run_case, compute_maps, deconvolve    # arrays (Z, Y, X, T) in memory
    from perfdecon import brain_case, grid_phantom              # simulators with ground truth

Arrays are ``(Z, Y, X[, T])`` inside perfdecon (NIfTI ``(X, Y, Z[, T])`` is transposed in
:mod:`perfdecon.io`), times in seconds, concentrations in HU enhancement (CT) or 1/s (DSC).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "MapsConfig": "perfdecon.config",
    "AifChoice": "perfdecon.maps_job",
    "MapsRun": "perfdecon.maps_job",
    "run_maps": "perfdecon.maps_job",
    "CaseInput": "perfdecon.cohort",
    "discover_cases": "perfdecon.cohort",
    "run_cohort": "perfdecon.cohort",
    "PhantomSpec": "perfdecon.phantom_job",
    "write_phantom": "perfdecon.phantom_job",
    "CaseResult": "perfdecon.pipeline",
    "run_case": "perfdecon.pipeline",
    "to_concentration": "perfdecon.pipeline",
    "compute_maps": "perfdecon.maps",
    "relative_cbf": "perfdecon.maps",
    "core_mask": "perfdecon.maps",
    "soft_core_from_aif": "perfdecon.maps",
    "deconvolve": "perfdecon.deconvolution",
    "auto_aif": "perfdecon.aif",
    "AifResult": "perfdecon.aif",
    "brain_case": "perfdecon.phantom",
    "grid_phantom": "perfdecon.phantom",
    "PerfdeconError": "perfdecon.errors",
    "demo_rows": "perfdecon.demo",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'perfdecon' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
