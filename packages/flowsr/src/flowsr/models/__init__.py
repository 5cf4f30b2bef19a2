"""flowsr networks (nn.Modules only: no I/O, no argv)."""

from flowsr.models.shuffle import PixelShuffle3d, pixel_shuffle_3d
from flowsr.models.surfrnet import SRResult, SURFRNet, build_model

__all__ = ["PixelShuffle3d", "SRResult", "SURFRNet", "build_model", "pixel_shuffle_3d"]
