"""pix2pix-style U-Net generator (Isola et al. 2017, as described in the usenhance paper)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNetGenerator"]


class UNetGenerator(nn.Module):
    """U-Net with ``num_downs`` stride-2 stages, skip connections and a tanh output.

    Encoder stage ``i``: Conv 4x4 stride 2 -> InstanceNorm (not on the first and the innermost
    stage) -> LeakyReLU(0.2). Decoder stage: ConvTranspose 4x4 stride 2 on the concatenation with
    the mirrored encoder output -> InstanceNorm -> ReLU, with Dropout(p) in the ``n_dropout``
    innermost decoder stages (the deep layers, as pix2pix); the outermost stage maps to
    ``out_channels`` through tanh, so outputs lie in [-1, 1]. Channels: ``ngf * min(2**i, 8)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels (1 for B-mode).
    ngf : int
        Channels of the first stage (64 in pix2pix/the paper).
    num_downs : int
        Number of down-sampling stages; inputs must be multiples of ``2**num_downs``
        (8 -> 256, pix2pix ``unet_256``).
    dropout : float
        Dropout probability in the inner decoder stages (0.5 in pix2pix).
    n_dropout : int
        How many inner decoder stages have dropout.

    Shape
    -----
    ``(N, in_channels, Y, X) -> (N, out_channels, Y, X)`` with ``Y, X`` multiples of
    :attr:`multiple`.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 64,
                 num_downs: int = 8, dropout: float = 0.5, n_dropout: int = 3) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError("num_downs must be >= 2")
        ch = [ngf * min(2**i, 8) for i in range(num_downs)]
        self.multiple = 2**num_downs
        self.down = nn.ModuleList()
        prev = in_channels
        for i, c in enumerate(ch):
            layers: list[nn.Module] = [nn.Conv2d(prev, c, 4, 2, 1, bias=i in (0, num_downs - 1))]
            if 0 < i < num_downs - 1:
                layers.append(nn.InstanceNorm2d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.down.append(nn.Sequential(*layers))
            prev = c
        self.up = nn.ModuleList()
        for j in range(num_downs - 1, 0, -1):  # decoder stage producing the size of encoder j-1
            cin = ch[j] if j == num_downs - 1 else 2 * ch[j]
            layers = [nn.ConvTranspose2d(cin, ch[j - 1], 4, 2, 1, bias=False),
                      nn.InstanceNorm2d(ch[j - 1]), nn.ReLU(inplace=True)]
            if (num_downs - 1 - j) < n_dropout and dropout > 0:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.out = nn.Sequential(nn.ConvTranspose2d(2 * ch[0], out_channels, 4, 2, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x`` (N, C, Y, X) in [-1, 1]; see the class docstring."""
        skips = []
        h = x
        for stage in self.down:
            h = stage(h)
            skips.append(h)
        h = skips.pop()
        for stage in self.up:
            h = stage(h)
            h = torch.cat([h, skips.pop()], dim=1)
        return self.out(h)
