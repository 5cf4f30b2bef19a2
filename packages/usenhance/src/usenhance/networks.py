"""The trainable sets: generator pair and discriminator pair, built from a :class:`TrainConfig`.

Each pair is one ``nn.Module`` with one ``forward`` so that DistributedDataParallel sees one
forward per optimiser step (a generator used twice in a cycle is fine inside one forward).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from usenhance.config import NetConfig, TrainConfig
from usenhance.models import PatchDiscriminator, UNetGenerator

__all__ = ["CycleOutputs", "Discriminators", "Generators", "build_generator", "generator_config"]


def generator_config(net: NetConfig) -> dict:
    """Constructor arguments of :class:`UNetGenerator` (what an export stores)."""
    return {"in_channels": net.channels, "out_channels": net.channels, "ngf": net.ngf,
            "num_downs": net.num_downs, "dropout": net.dropout, "n_dropout": net.n_dropout}


def build_generator(net: NetConfig) -> UNetGenerator:
    """A U-Net generator for ``net``."""
    return UNetGenerator(**generator_config(net))


class CycleOutputs(NamedTuple):
    """Generator outputs of one iteration (``None`` where the model has no such path)."""

    fake_high: torch.Tensor
    fake_low: torch.Tensor | None
    rec_low: torch.Tensor | None
    rec_high: torch.Tensor | None


class Generators(nn.Module):
    """``g_h``: L -> H (the enhancer) and, for the CycleGAN models, ``g_l``: H -> L."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.g_h = build_generator(cfg.net)
        self.g_l = build_generator(cfg.net) if cfg.cyclic else None

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> CycleOutputs:
        fake_high = self.g_h(low)
        if self.g_l is None:
            return CycleOutputs(fake_high, None, None, None)
        fake_low = self.g_l(high)
        return CycleOutputs(fake_high, fake_low, self.g_l(fake_high), self.g_h(fake_low))


class Discriminators(nn.Module):
    """``d_h`` judges domain H and ``d_l`` domain L; pix2pix has one conditional ``d_h`` on (L, H)."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        c = cfg.net.channels
        self.conditional = not cfg.cyclic
        mk = lambda cin: PatchDiscriminator(cin, cfg.net.ndf, cfg.net.d_layers,  # noqa: E731
                                            cfg.net.spectral_norm)
        self.d_h = mk(2 * c if self.conditional else c)
        self.d_l = None if self.conditional else mk(c)

    def score_high(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """D_H scores of an H-domain image (conditioned on ``low`` for pix2pix)."""
        return self.d_h(torch.cat([low, high], 1) if self.conditional else high)

    def forward(self, low: torch.Tensor, high: torch.Tensor, fake_high: torch.Tensor,
                fake_low: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """Scores ``(real_h, fake_h, real_l, fake_l)`` (the last two ``None`` for pix2pix)."""
        real_h = self.score_high(low, high)
        fake_h = self.score_high(low, fake_high)
        if self.d_l is None:
            return real_h, fake_h, None, None
        return real_h, fake_h, self.d_l(low), self.d_l(fake_low)
