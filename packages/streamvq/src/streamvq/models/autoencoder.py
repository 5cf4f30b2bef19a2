"""The bundle autoencoder: shared encoder/decoder around a bottleneck chosen by name."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from streamvq.config import MODEL_NAMES, ModelConfig
from streamvq.errors import StreamvqError
from streamvq.models.bottlenecks import (
    GaussianBottleneck,
    GumbelSoftQuantizer,
    IdentityBottleneck,
    VectorQuantizer,
    VectorQuantizerEMA,
    perplexity,
)
from streamvq.models.resnet import Decoder, Encoder


@dataclass
class ModelOutput:
    """Forward result of :class:`BundleAutoencoder`."""

    recon: torch.Tensor
    """(B, 3, S, P) reconstruction, normalised units."""
    latent: torch.Tensor
    """(B, D, S/4, P/4) decoder input (after the bottleneck)."""
    loss: torch.Tensor
    """Scalar bottleneck loss term (already weighted)."""
    usage: torch.Tensor | None
    """(K,) codebook usage of this batch (VQ models), else None."""
    indices: torch.Tensor | None
    """(B, S/4, P/4) chosen codes (VQ models), else None."""

    @property
    def perplexity(self) -> torch.Tensor | None:
        """Codebook perplexity of this batch (VQ models), else None."""
        return None if self.usage is None else perplexity(self.usage)

    @property
    def codes_used(self) -> int | None:
        """Number of distinct codebook vectors chosen in this batch (VQ models), else None."""
        return None if self.usage is None else int((self.usage > 0).sum())


class BundleAutoencoder(nn.Module):
    """ResNet encoder -> bottleneck -> ResNet decoder over ``(B, 3, S, P)`` bundle tensors.

    Shape: input ``(B, 3, S, P)`` (xyz channels, S streamlines, P points, S and P divisible by 4,
    by 16 for the VAE), latent ``(B, D, S/4, P/4)``, output like the input.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.model not in MODEL_NAMES:
            raise StreamvqError(f"unknown model {config.model!r}; choose one of {MODEL_NAMES}")
        if config.streamlines % 4 or config.points % 4:
            raise StreamvqError("streamlines and points per bundle must be divisible by 4")
        self.config = config
        c = config
        self.encoder = Encoder(c.hidden, c.residual_hidden, c.residual_layers, c.embedding_dim)
        self.decoder = Decoder(c.hidden, c.residual_hidden, c.residual_layers, c.embedding_dim)
        grid = (c.streamlines // 4, c.points // 4)
        if c.model == "ae":
            self.bottleneck: nn.Module = IdentityBottleneck()
        elif c.model == "vae":
            if grid[0] % 4 or grid[1] % 4:
                raise StreamvqError("the VAE needs streamlines and points divisible by 16")
            self.bottleneck = GaussianBottleneck(c.embedding_dim, grid, c.vae_latent, c.kl_weight)
        elif c.model == "vqvae":
            self.bottleneck = VectorQuantizer(c.codebook_size, c.embedding_dim, c.commitment)
        elif c.model == "vqema":
            self.bottleneck = VectorQuantizerEMA(
                c.codebook_size, c.embedding_dim, c.commitment, c.decay, c.ema_epsilon
            )
        else:
            self.bottleneck = GumbelSoftQuantizer(
                c.codebook_size, c.embedding_dim, c.temperature, c.codebook_std
            )

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(D, S/4, P/4)`` of one bundle's latent."""
        c = self.config
        return (c.embedding_dim, c.streamlines // 4, c.points // 4)

    def set_stochastic(self, enabled: bool) -> None:
        """Sample (Gumbel noise / VAE posterior) at evaluation too (default off)."""
        if hasattr(self.bottleneck, "stochastic"):
            self.bottleneck.stochastic = bool(enabled)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, P)`` -> latent ``(B, D, S/4, P/4)`` (after the bottleneck)."""
        return self.bottleneck(self.encoder(x)).quantized

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent ``(B, D, S/4, P/4)`` -> ``(B, 3, S, P)``."""
        return self.decoder(latent)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        b = self.bottleneck(self.encoder(x))
        return ModelOutput(self.decoder(b.quantized), b.quantized, b.loss, b.usage, b.indices)


def build_model(config: ModelConfig) -> BundleAutoencoder:
    """A fresh model for ``config``."""
    return BundleAutoencoder(config)


def model_config_dict(config: ModelConfig) -> dict:
    """JSON form of a model config."""
    return asdict(config)
