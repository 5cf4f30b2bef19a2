"""Losses of the CycleGAN + perceptual model (function + ``nn.Module`` pairs).

Generator (paper, eq. "L(G_H, G_L, D_H, D_L)")::

    L_G = w_adv   [MSE(1, D_H(G_H(L))) + MSE(1, D_L(G_L(H)))]           (LSGAN)
        + w_cycle [|H - G_H(G_L(H))|_1 + |L - G_L(G_H(L))|_1]
        + w_paired[|H - G_H(L)|_1 + |L - G_L(H)|_1]
        + w_per   [LPIPS(H, G_H(L)) + LPIPS(L, G_L(H))]

Discriminator, per domain: ``0.5 [MSE(t, D(real)) + MSE(0, D(fake))]`` with the paper's label
smoothing: the real target is ``t = 1.0`` while the mean real scores of *both* discriminators are
below 0.9, else ``t = 0.9``. (``|.|_1`` is the mean absolute error.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "GeneratorLoss",
    "GeneratorTerms",
    "LSGANLoss",
    "cycle_l1",
    "discriminator_loss",
    "lsgan_loss",
    "real_label",
]


def _full(x: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 (autocast) -> float32; float32/64 unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def lsgan_loss(scores: torch.Tensor, target: float) -> torch.Tensor:
    """Least-squares GAN loss ``mean((scores - target)^2)`` (Mao et al. 2017)."""
    return torch.mean((_full(scores) - float(target)) ** 2)


class LSGANLoss(nn.Module):
    """Module form of :func:`lsgan_loss`."""

    def forward(self, scores: torch.Tensor, target: float) -> torch.Tensor:
        return lsgan_loss(scores, target)


def cycle_l1(x: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between an image and its round trip (or its paired target)."""
    return torch.mean(torch.abs(_full(x) - _full(reconstructed)))


def real_label(mean_real_scores: list[float], threshold: float = 0.9, smooth: float = 0.9) -> float:
    """The paper's label-smoothing rule: 1.0 while every mean real score < ``threshold``."""
    return 1.0 if all(s < threshold for s in mean_real_scores) else float(smooth)


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor,
                       real_target: float) -> torch.Tensor:
    """``0.5 [MSE(real_target, D(real)) + MSE(0, D(fake))]`` for one discriminator."""
    return 0.5 * (lsgan_loss(real_scores, real_target) + lsgan_loss(fake_scores, 0.0))


@dataclass(frozen=True)
class GeneratorTerms:
    """The generator loss and its (unweighted) terms, as tensors."""

    total: torch.Tensor
    adv: torch.Tensor
    cycle: torch.Tensor
    paired: torch.Tensor
    perceptual: torch.Tensor


class GeneratorLoss(nn.Module):
    """Weighted generator loss of the paper (see the module docstring).

    Parameters
    ----------
    w_adv, w_cycle, w_paired, w_perceptual : float
        Weights (paper: 1, 10, 2, 10). A weight of 0 skips that term's computation.
    perceptual : nn.Module or None
        A module ``(a, b) -> per-image distance`` on [-1, 1] images (LPIPS); required when
        ``w_perceptual > 0``.
    """

    def __init__(self, w_adv: float = 1.0, w_cycle: float = 10.0, w_paired: float = 2.0,
                 w_perceptual: float = 10.0, perceptual: nn.Module | None = None) -> None:
        super().__init__()
        if w_perceptual > 0 and perceptual is None:
            raise ValueError("w_perceptual > 0 needs a perceptual module")
        self.w = (float(w_adv), float(w_cycle), float(w_paired), float(w_perceptual))
        self.perceptual = perceptual

    def forward(self, low: torch.Tensor, high: torch.Tensor, fake_high: torch.Tensor,
                fake_low: torch.Tensor, rec_low: torch.Tensor | None, rec_high: torch.Tensor | None,
                score_fake_high: torch.Tensor, score_fake_low: torch.Tensor | None) -> GeneratorTerms:
        """Combine the terms from the forward pass of both generators and discriminators."""
        w_adv, w_cyc, w_pair, w_per = self.w
        zero = fake_high.new_zeros(()).float()
        adv = lsgan_loss(score_fake_high, 1.0)
        if score_fake_low is not None:
            adv = adv + lsgan_loss(score_fake_low, 1.0)
        cyc = zero
        if w_cyc > 0 and rec_low is not None and rec_high is not None:
            cyc = cycle_l1(high, rec_high) + cycle_l1(low, rec_low)
        pair = zero
        if w_pair > 0:
            pair = cycle_l1(high, fake_high) + (cycle_l1(low, fake_low) if fake_low is not None else 0)
        per = zero
        if w_per > 0:
            per = self.perceptual(fake_high, high).mean()
            if fake_low is not None:
                per = per + self.perceptual(fake_low, low).mean()
        total = w_adv * adv + w_cyc * cyc + w_pair * pair + w_per * per
        return GeneratorTerms(total, adv.detach(), cyc.detach(), pair.detach(), per.detach())
