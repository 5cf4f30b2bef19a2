"""Spectral-normalised PatchGAN discriminator (70x70 receptive field, 30x30 map for 256x256)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4x4 convolutions, one stride-1, then a 1-channel map.

    Every convolution is spectrally normalised (Miyato et al. 2018), which replaces the batch or
    instance norm of the original PatchGAN; activations are LeakyReLU(0.2). Channels:
    ``ndf * min(2**i, 8)``.

    Parameters
    ----------
    in_channels : int
        Input channels (1 for B-mode; 2 for a conditional pix2pix discriminator on (L, H)).
    ndf : int
        Channels of the first layer (64 in the paper).
    n_layers : int
        Stride-2 layers after the first (3 -> 70x70 receptive field).
    use_spectral_norm : bool
        Spectral normalisation on every convolution.

    Shape
    -----
    ``(N, C, 256, 256) -> (N, 1, 30, 30)`` for ``n_layers = 3``; in general each side becomes
    ``Y / 2**n_layers - 2``.
    """

    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3,
                 use_spectral_norm: bool = True) -> None:
        super().__init__()
        sn = spectral_norm if use_spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(in_channels, ndf, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        c = ndf
        for i in range(1, n_layers):
            nc = ndf * min(2**i, 8)
            layers += [sn(nn.Conv2d(c, nc, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            c = nc
        nc = ndf * min(2**n_layers, 8)
        layers += [sn(nn.Conv2d(c, nc, 4, 1, 1)), nn.LeakyReLU(0.2, True),
                   sn(nn.Conv2d(nc, 1, 4, 1, 1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch scores (N, 1, Y', X') for images (N, C, Y, X)."""
        return self.net(x)
