"""Networks: the pix2pix-style U-Net generator and the spectral-normalised PatchGAN."""

from usenhance.models.patchgan import PatchDiscriminator
from usenhance.models.unet import UNetGenerator

__all__ = ["PatchDiscriminator", "UNetGenerator"]
