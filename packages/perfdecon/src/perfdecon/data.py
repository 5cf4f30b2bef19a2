"""Learned-AIF training data, re-exported from its modules (kept for ``perfdecon.data`` users).

- :mod:`perfdecon.datasets`: :class:`Sample`, network input scaling, frame fitting, the
  phantom dataset and the seeded k-fold split;
- :mod:`perfdecon.isles`: the ISLES18-layout loader and dataset;
- :mod:`perfdecon.augment`: perfusion and spatial augmentation.
"""

from __future__ import annotations

from perfdecon.augment import AugmentConfig, augment, shift_bolus
from perfdecon.datasets import (
    Fold,
    PhantomDataset,
    Sample,
    ct_concentration,
    fit_frames,
    input_scale,
    kfold_split,
    network_input,
)
from perfdecon.isles import (
    ISLES_MODALITIES,
    IslesCase,
    IslesDataset,
    find_isles_cases,
    isles_sample,
    load_isles_case,
)

__all__ = [
    "ISLES_MODALITIES",
    "AugmentConfig",
    "Fold",
    "IslesCase",
    "IslesDataset",
    "PhantomDataset",
    "Sample",
    "augment",
    "ct_concentration",
    "find_isles_cases",
    "fit_frames",
    "input_scale",
    "isles_sample",
    "kfold_split",
    "load_isles_case",
    "network_input",
    "shift_bolus",
]
