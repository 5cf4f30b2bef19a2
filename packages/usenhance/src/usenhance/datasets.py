"""Torch datasets of random training crops (paired or unpaired), values in [-1, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from usenhance.errors import UsenhanceError

__all__ = ["CropDataset"]


def _crop(img: np.ndarray, size: int, fy: float, fx: float) -> np.ndarray:
    """A ``size x size`` crop at relative position ``(fy, fx)`` in [0, 1]; reflect-pad small images."""
    y, x = img.shape
    if y < size or x < size:
        img = np.pad(img, ((0, max(size - y, 0)), (0, max(size - x, 0))), mode="symmetric")
        y, x = img.shape
    y0 = int(round(fy * (y - size)))
    x0 = int(round(fx * (x - size)))
    return img[y0:y0 + size, x0:x0 + size]


class CropDataset(torch.utils.data.Dataset):
    """Random square crops of low (domain L) and high (domain H) quality images.

    Parameters
    ----------
    lows, highs : sequence of np.ndarray
        Images ``(Y, X)`` float32 in [0, 1], any sizes.
    crop : int
        Crop side (pixels).
    paired : bool
        ``True``: item ``i`` is pair ``i`` cropped at the same relative position (the pairs are
        roughly aligned); ``False``: a random high image is drawn for each low one.
    augment : bool
        Random left-right flip (the same for both images of a pair).

    Items are dicts ``{"low": (1, crop, crop), "high": (1, crop, crop)}`` float32 in [-1, 1];
    randomness comes from torch's generator (seeded per worker by the shared loader).
    """

    def __init__(self, lows: Sequence[np.ndarray], highs: Sequence[np.ndarray], crop: int,
                 paired: bool = True, augment: bool = True) -> None:
        if paired and len(lows) != len(highs):
            raise UsenhanceError(f"paired dataset: {len(lows)} low vs {len(highs)} high images")
        if not lows or not highs:
            raise UsenhanceError("dataset: no training images")
        if crop < 8:
            raise UsenhanceError(f"crop must be >= 8 pixels, got {crop}")
        self.lows, self.highs = list(lows), list(highs)
        self.crop, self.paired, self.augment = int(crop), paired, augment

    def __len__(self) -> int:
        return len(self.lows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r = torch.rand(4)
        j = i if self.paired else int(torch.randint(len(self.highs), (1,)).item())
        fy, fx = float(r[0]), float(r[1])
        lo = _crop(self.lows[i], self.crop, fy, fx)
        if not self.paired:
            fy, fx = float(r[2]), float(r[3])
        hi = _crop(self.highs[j], self.crop, fy, fx)
        if self.augment and bool(torch.rand(1) < 0.5):
            lo, hi = lo[:, ::-1], hi[:, ::-1]
        to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32) * 2 - 1)[None]  # noqa: E731
        return {"low": to_t(lo), "high": to_t(hi)}
