"""Soft-Dice loss (the paper's eq. 9) as a function and as an ``nn.Module``.

``soft_dice = (2 * sum(p * t) + eps) / (sum(p) + sum(t) + eps)``, the same formula as
:func:`medshared.metrics.soft_dice` (numpy); here in torch so it is differentiable.
``loss = 1 - soft_dice``.
"""

from __future__ import annotations

import torch
from torch import nn


def soft_dice(
    prob: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Soft Dice coefficient between a probability map and a (binary or soft) target.

    Parameters
    ----------
    prob:
        Predicted lesion probability, any shape, values in [0, 1].
    target:
        Ground-truth mask, same shape as ``prob`` (bool or float).
    mask:
        Optional region (same shape) outside which both are ignored, e.g. the brain mask.
    eps:
        Smoothing term in numerator and denominator (empty vs empty gives 1).

    Returns
    -------
    torch.Tensor
        Scalar in [0, 1]; differentiable with respect to ``prob``.

    Shape:
        prob, target, mask: ``(*)``; output ``()``.
    """
    if prob.shape != target.shape:
        raise ValueError(f"prob {tuple(prob.shape)} and target {tuple(target.shape)} differ")
    t = target.to(prob.dtype)
    p = prob
    if mask is not None:
        if mask.shape != prob.shape:
            raise ValueError(f"mask {tuple(mask.shape)} does not match prob {tuple(prob.shape)}")
        m = mask.to(prob.dtype)
        p = p * m
        t = t * m
    inter = (p * t).sum()
    return (2.0 * inter + eps) / (p.sum() + t.sum() + eps)


def soft_dice_loss(
    prob: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """``1 - soft_dice(prob, target, mask, eps)`` (the paper's eq. 9); scalar, differentiable."""
    return 1.0 - soft_dice(prob, target, mask=mask, eps=eps)


class SoftDiceLoss(nn.Module):
    """``nn.Module`` wrapper of :func:`soft_dice_loss`.

    Examples
    --------
    >>> loss = SoftDiceLoss()
    >>> p = torch.tensor([1.0, 0.0]); t = torch.tensor([1.0, 0.0])
    >>> float(loss(p, t))
    0.0
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(
        self, prob: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return soft_dice_loss(prob, target, mask=mask, eps=self.eps)
