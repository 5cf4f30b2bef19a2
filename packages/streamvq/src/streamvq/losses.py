"""Training objective: reconstruction MSE plus the bottleneck's own (weighted) term."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from streamvq.models.autoencoder import ModelOutput


class Objective(NamedTuple):
    """Total loss and its parts (scalars)."""

    total: torch.Tensor
    mse: torch.Tensor
    bottleneck: torch.Tensor


def reconstruction_mse(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every coordinate (normalised units^2)."""
    return F.mse_loss(recon.float(), target.float())


def objective(out: ModelOutput, target: torch.Tensor) -> Objective:
    """``mse(recon, target) + bottleneck loss`` (VQ codebook/commitment, VAE KL)."""
    mse = reconstruction_mse(out.recon, target)
    extra = out.loss.float()
    return Objective(mse + extra, mse, extra)
