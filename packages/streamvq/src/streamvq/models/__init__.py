"""Bundle autoencoders: one ResNet encoder/decoder, five swappable bottlenecks."""

from streamvq.models.autoencoder import BundleAutoencoder, ModelOutput, build_model
from streamvq.models.bottlenecks import (
    BOTTLENECKS,
    BottleneckOutput,
    GaussianBottleneck,
    GumbelSoftQuantizer,
    IdentityBottleneck,
    VectorQuantizer,
    VectorQuantizerEMA,
)

__all__ = [
    "BOTTLENECKS",
    "BottleneckOutput",
    "BundleAutoencoder",
    "GaussianBottleneck",
    "GumbelSoftQuantizer",
    "IdentityBottleneck",
    "ModelOutput",
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "build_model",
]
