"""3D pixel shuffle (sub-pixel convolution upsampling, Shi et al. 2016) as a reshape/permute."""

from __future__ import annotations

import torch
from torch import nn


def pixel_shuffle_3d(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Rearrange ``(B, C r^3, D, H, W)`` into ``(B, C, D r, H r, W r)``.

    Channel ``c r^3 + i r^2 + j r + k`` of input voxel ``(d, h, w)`` becomes output voxel
    ``(d r + i, h r + j, w r + k)`` of channel ``c`` (the 3D analogue of
    ``torch.nn.functional.pixel_shuffle``).

    Shape:
        input ``(B, C * r**3, D, H, W)``, output ``(B, C, D * r, H * r, W * r)``.
    """
    b, c, d, h, w = x.shape
    r = int(factor)
    if c % (r**3):
        raise ValueError(f"pixel_shuffle_3d: {c} channels are not divisible by {r}^3")
    co = c // r**3
    x = x.reshape(b, co, r, r, r, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, co, d * r, h * r, w * r)


class PixelShuffle3d(nn.Module):
    """Module form of :func:`pixel_shuffle_3d`."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.factor = int(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_3d(x, self.factor)
