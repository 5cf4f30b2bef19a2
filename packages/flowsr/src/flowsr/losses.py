"""SURFR-Net loss, eq. (4): ``1_CFD * L1 + alpha * BCE`` (function + nn.Module pair).

``L1`` is the mean absolute velocity error over the CFD samples of the batch (every voxel and
component; samples without high-res velocity, i.e. MRI patches, are excluded by the indicator).
``BCE`` is binary cross-entropy of the segmentation over every sample, computed from logits
(``binary_cross_entropy_with_logits``, the numerically stable form of sigmoid + BCE).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


class LossParts(NamedTuple):
    """Total loss and its two terms (L1 over CFD samples, BCE over all)."""

    total: torch.Tensor
    l1: torch.Tensor
    bce: torch.Tensor


def surfr_loss(
    velocity: torch.Tensor,
    target: torch.Tensor,
    is_cfd: torch.Tensor,
    seg_logits: torch.Tensor | None = None,
    seg_target: torch.Tensor | None = None,
    alpha: float = 0.02,
) -> LossParts:
    """Eq. (4) of the paper.

    Shape:
        ``velocity``, ``target`` ``(B, 3, X, Y, Z)``; ``is_cfd`` ``(B,)`` in {0, 1};
        ``seg_logits``, ``seg_target`` ``(B, 1, X, Y, Z)`` (target in [0, 1]).

    Returns
    -------
    LossParts
        ``total = l1 + alpha * bce`` (``bce`` is 0 without a segmentation head).
    """
    w = is_cfd.to(velocity.dtype).reshape(-1, 1, 1, 1, 1)
    n_cfd = w.sum()
    per = (velocity - target).abs() * w
    l1 = per.sum() / (n_cfd * velocity[0].numel()).clamp_min(1.0)
    if seg_logits is not None and seg_target is not None and alpha > 0:
        dtype = torch.promote_types(seg_logits.dtype, torch.float32)  # half -> float32
        bce = F.binary_cross_entropy_with_logits(seg_logits.to(dtype), seg_target.to(dtype))
    else:
        bce = velocity.new_zeros(())
    return LossParts(l1 + alpha * bce, l1, bce)


class SURFRLoss(nn.Module):
    """Module form of :func:`surfr_loss` with a fixed ``alpha``."""

    def __init__(self, alpha: float = 0.02) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, velocity, target, is_cfd, seg_logits=None, seg_target=None) -> LossParts:  # noqa: ANN001
        return surfr_loss(velocity, target, is_cfd, seg_logits, seg_target, self.alpha)
