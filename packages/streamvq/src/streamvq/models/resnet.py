"""ResNet encoder and decoder over bundle tensors ``(B, 3, S, P)`` (the VQ-VAE layout).

Encoder: conv 4x4/2 (3 -> h/2), ReLU, conv 4x4/2 (h/2 -> h), ReLU, conv 3x3 (h -> h), residual
stack; output ``(B, h, S/4, P/4)``. Decoder: conv 3x3 (d -> h), residual stack, transposed conv
4x4/2 (h -> h/2), ReLU, transposed conv 4x4/2 (h/2 -> 3), no output activation (as the
authors' final version). A residual block is ReLU, conv 3x3 (h -> r, no bias), ReLU, conv 1x1
(r -> h, no bias), added to its input; the stack ends with a ReLU.
"""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))``."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResidualStack(nn.Sequential):
    """``n`` residual blocks followed by a ReLU."""

    def __init__(self, channels: int, hidden: int, n: int) -> None:
        super().__init__(*[Residual(channels, hidden) for _ in range(n)], nn.ReLU())


class Encoder(nn.Module):
    """``(B, 3, S, P)`` -> ``(B, d, S/4, P/4)`` (including the 1x1 pre-quantisation conv)."""

    def __init__(self, hidden: int, residual_hidden: int, residual_layers: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, hidden // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            ResidualStack(hidden, residual_hidden, residual_layers),
            nn.Conv2d(hidden, out, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """``(B, d, S/4, P/4)`` -> ``(B, 3, S, P)``."""

    def __init__(self, hidden: int, residual_hidden: int, residual_layers: int, inp: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(inp, hidden, 3, padding=1),
            ResidualStack(hidden, residual_hidden, residual_layers),
            nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(hidden // 2, 3, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
