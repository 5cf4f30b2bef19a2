"""SURFR-Net: RCAN-based 3D super-resolution with velocity and segmentation heads.

Layout (paper Sec. 2.3): inputs (u, v, w[, WMF]) -> two 3x3x3 conv + ReLU -> RCAN backbone
(``groups`` residual groups of ``blocks`` residual channel-attention blocks, each group closed by
a conv and a skip, the backbone by a conv and the long skip) -> 3x3x3 conv to ``8 C`` channels
and 3D pixel shuffle x2 -> 3x3x3 conv + ReLU -> three velocity heads (conv, ReLU, conv; one per
component) and a segmentation head (1x1x1 conv). The segmentation head returns **logits**; the
sigmoid of the paper is applied at inference (:attr:`SRResult.probability`) and the training loss
uses BCE-with-logits, which is the same loss computed stably.

The last convolution of the velocity heads is zero-initialised (an initialisation choice the
paper does not state), so an untrained network outputs the zero field. Option ``interp_skip``
(not in the paper, off by default) adds the trilinear upsampling of the input velocity to the
heads' output, so an untrained network starts as trilinear interpolation and learns a correction.

Baselines as configurations: ``use_wmf=False`` is the paper's "w/o WMF" ablation;
``use_wmf=False, segmentation=False`` is the SR-only network (SRFlow-style comparison).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from flowsr.config import ModelConfig
from flowsr.models.shuffle import PixelShuffle3d


class SRResult(NamedTuple):
    """Network output.

    Attributes
    ----------
    velocity : torch.Tensor
        ``(B, 3, 2X, 2Y, 2Z)`` velocity in the input's units (flowsr: units of VENC).
    seg_logits : torch.Tensor or None
        ``(B, 1, 2X, 2Y, 2Z)`` segmentation logits (None without the head).
    """

    velocity: torch.Tensor
    seg_logits: torch.Tensor | None

    @property
    def probability(self) -> torch.Tensor | None:
        """Sigmoid of the segmentation logits (the paper's head output)."""
        return None if self.seg_logits is None else torch.sigmoid(self.seg_logits)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, k, padding=k // 2)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention (RCAN's CA layer) in 3D."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        mid = max(1, channels // reduction)
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool3d(1), nn.Conv3d(channels, mid, 1), nn.ReLU(inplace=True),
            nn.Conv3d(mid, channels, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)


class RCAB(nn.Module):
    """Residual channel-attention block: conv, ReLU, conv, CA, plus the input."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels), nn.ReLU(inplace=True), _conv(channels, channels),
            ChannelAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """``blocks`` RCABs and a conv, with a short skip."""

    def __init__(self, channels: int, blocks: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[RCAB(channels, reduction) for _ in range(blocks)], _conv(channels, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VelocityHeads(nn.Module):
    """Three independent heads (conv 3x3x3, ReLU, conv 3x3x3 -> 1 channel), one per component.

    Computed as one conv ``C -> 3C`` and one block-diagonal conv ``3C -> 3`` (the weight is
    masked so output ``k`` sees only the ``k``-th block of ``C`` channels): exactly three
    separate heads, but without oneDNN's very slow CPU backward for single-channel outputs.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.channels = c
        self.first = _conv(c, 3 * c)
        self.second = _conv(3 * c, 3)
        with torch.no_grad():
            self.second.weight.mul_(self.block_mask)

    @property
    def block_mask(self) -> torch.Tensor:
        """``(3, 3C, 1, 1, 1)`` 0/1 mask: output ``k`` reads hidden channels ``kC..(k+1)C``."""
        w = self.second.weight
        blocks = torch.arange(3 * self.channels, device=w.device) // self.channels
        rows = torch.arange(3, device=w.device)[:, None]
        return (blocks[None, :] == rows).to(w.dtype)[:, :, None, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.first(x))
        return F.conv3d(h, self.second.weight * self.block_mask, self.second.bias, padding=1)


class SURFRNet(nn.Module):
    """SURFR-Net (see the module docstring).

    Parameters
    ----------
    config : ModelConfig
        Channels, groups, blocks, reduction, ``use_wmf``, ``segmentation``.

    Shape:
        input ``(B, 4, X, Y, Z)`` (``(B, 3, ...)`` without WMF), output :class:`SRResult` at
        ``2X, 2Y, 2Z``.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        c = cfg.channels
        self.in_channels = 4 if cfg.use_wmf else 3
        self.head = nn.Sequential(
            _conv(self.in_channels, c), nn.ReLU(inplace=True), _conv(c, c), nn.ReLU(inplace=True)
        )
        self.body = nn.Sequential(
            *[ResidualGroup(c, cfg.blocks, cfg.reduction) for _ in range(cfg.groups)], _conv(c, c)
        )
        self.upsample = nn.Sequential(
            _conv(c, 8 * c), PixelShuffle3d(2), _conv(c, c), nn.ReLU(inplace=True)
        )
        self.velocity_heads = VelocityHeads(c)
        self.seg_head = nn.Conv3d(c, 1, 1) if cfg.segmentation else None
        # Zero-initialised last velocity convolution: the untrained network outputs exactly the
        # zero field, so the first L1 gradients reach the shared trunk only through the heads'
        # (then zero) weights and cannot scramble the features the segmentation head learns
        # from; measured: IoU 0 -> ~0.9 after 120 CPU steps (README "Why it stayed at zero").
        nn.init.zeros_(self.velocity_heads.second.weight)
        nn.init.zeros_(self.velocity_heads.second.bias)

    def forward(self, x: torch.Tensor) -> SRResult:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SURFRNet expects (B, {self.in_channels}, X, Y, Z) input, got {tuple(x.shape)}"
            )
        feat = self.head(x)
        feat = feat + self.body(feat)  # long skip
        up = self.upsample(feat)
        vel = self.velocity_heads(up)
        if self.config.interp_skip:
            vel = vel + F.interpolate(x[:, :3], scale_factor=2, mode="trilinear",
                                      align_corners=False)
        seg = self.seg_head(up) if self.seg_head is not None else None
        return SRResult(vel, seg)


def build_model(config: ModelConfig | dict | None = None) -> SURFRNet:
    """Build a :class:`SURFRNet` from a config or its dict form (as stored in exports)."""
    if isinstance(config, dict):
        from medshared.training import config_from_dict

        config = config_from_dict(ModelConfig, config)
    return SURFRNet(config)
