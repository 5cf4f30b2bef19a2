"""Image-quality, overlap and bundle-shape metrics: numpy arrays in, a float out.

=============  ===========================================================
psnr           peak signal-to-noise ratio (dB), explicit ``data_range``
ssim           structural similarity, Gaussian window (skimage-compatible)
lncc           locally normalised cross-correlation
mse            mean squared error
dice, iou      overlap of binary masks (``jaccard`` is an alias of ``iou``)
soft_dice      Dice for probabilities
hausdorff95    95th-percentile symmetric surface distance (mm)
buan           bundle shape similarity (needs the ``dipy`` extra)
=============  ===========================================================
"""

from medshared.metrics.buan import buan, buan_adjacency, buan_centroids
from medshared.metrics.distance import hausdorff95, surface_distances
from medshared.metrics.lncc import lncc
from medshared.metrics.overlap import dice, iou, jaccard, soft_dice
from medshared.metrics.psnr import mse, psnr
from medshared.metrics.ssim import ssim, ssim_map

__all__ = [
    "buan",
    "buan_adjacency",
    "buan_centroids",
    "dice",
    "hausdorff95",
    "iou",
    "jaccard",
    "lncc",
    "mse",
    "psnr",
    "soft_dice",
    "ssim",
    "ssim_map",
    "surface_distances",
]
