"""Overlap metrics for segmentation masks: Dice, IoU (Jaccard) and soft Dice."""

from __future__ import annotations

import numpy as np

from medshared.errors import MedsharedError
from medshared.metrics._checks import as_image_pair, as_mask, check_finite


def _binary_pair(a: np.ndarray, b: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_image_pair(a, b, name, ndims=(1, 2, 3, 4))
    return as_mask(a, "a", name), as_mask(b, "b", name)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)`` of two binary masks.

    Masks are bool or 0/1 arrays of equal shape (any of 1D-4D). Two empty masks agree
    perfectly: the result is defined as 1.0 (one empty, one not: 0.0).

    Example
    -------
    >>> import numpy as np
    >>> a = np.array([1, 1, 0, 0]); b = np.array([1, 0, 0, 0])
    >>> round(dice(a, b), 4)
    0.6667
    """
    a, b = _binary_pair(a, b, "dice")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union (Jaccard index) ``|A∩B| / |A∪B|`` of two binary masks.

    Empty vs empty is defined as 1.0. ``iou = dice / (2 - dice)``.

    Example
    -------
    >>> import numpy as np
    >>> round(iou(np.array([1, 1, 0]), np.array([1, 0, 1])), 4)
    0.3333
    """
    a, b = _binary_pair(a, b, "iou")
    union = int(np.logical_or(a, b).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(a, b).sum()) / union


jaccard = iou


def soft_dice(prob: np.ndarray, target: np.ndarray, eps: float = 1e-6) -> float:
    """Soft Dice ``(2 Σ p t + eps) / (Σ p + Σ t + eps)`` for probabilities ``p`` in [0, 1].

    ``target`` may be binary or soft. With ``eps`` > 0, empty vs empty gives 1.0. For binary
    inputs and ``eps = 0`` this equals :func:`dice`.
    """
    p, t = as_image_pair(prob, target, "soft_dice", ndims=(1, 2, 3, 4))
    check_finite(p, "prob", "soft_dice")
    check_finite(t, "target", "soft_dice")
    p = p.astype(np.float64)
    t = t.astype(np.float64)
    if p.min() < 0 or p.max() > 1 or t.min() < 0 or t.max() > 1:
        raise MedsharedError("soft_dice: prob and target must lie in [0, 1]")
    den = p.sum() + t.sum() + eps
    if den == 0:
        return 1.0
    return float((2.0 * np.sum(p * t) + eps) / den)
