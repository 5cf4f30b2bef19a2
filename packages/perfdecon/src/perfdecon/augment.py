"""Training augmentation of perfusion samples: bolus delay, peak scaling, flips, rot90, noise.

Works on :class:`perfdecon.datasets.Sample` (series ``(Z, Y, X, T)``, masks ``(Z, Y, X)``);
every random draw comes from the ``np.random.Generator`` passed in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from perfdecon.datasets import Sample


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation ranges (all drawn from the ``rng`` passed to :func:`augment`).

    Attributes
    ----------
    max_shift_frames:
        Bolus delay shift drawn uniformly in ``[-max, +max]`` frames (sub-frame by linear
        interpolation; positive = later arrival).
    scale_range:
        Peak (concentration) scaling factor drawn uniformly in this range.
    flip:
        Random left-right and anterior-posterior flips (in-plane axes).
    rot90:
        Random in-plane rotation by a multiple of 90 degrees.
    noise_std:
        Gaussian noise standard deviation drawn uniformly in ``[0, noise_std]`` (series units,
        HU for CT).
    """

    max_shift_frames: float = 3.0
    scale_range: tuple[float, float] = (0.7, 1.3)
    flip: bool = True
    rot90: bool = True
    noise_std: float = 1.0


def shift_bolus(ctc: np.ndarray, shift_frames: float) -> np.ndarray:
    """Delay every curve of ``ctc`` (``(..., T)``) by ``shift_frames`` frames.

    ``out[..., t] = ctc(t - shift)`` with linear interpolation between frames and the first/last
    frame repeated beyond the ends, so a positive shift mimics a later bolus arrival and a
    whole-frame shift moves the peak by exactly that many frames. Vectorised over all voxels.
    """
    ctc = np.asarray(ctc)
    n = ctc.shape[-1]
    src = np.clip(np.arange(n, dtype=np.float64) - float(shift_frames), 0.0, n - 1.0)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (src - i0).astype(ctc.dtype if ctc.dtype.kind == "f" else np.float64)
    return ctc[..., i0] * (1 - w) + ctc[..., i1] * w


def augment(sample: Sample, rng: np.random.Generator, config: AugmentConfig) -> Sample:
    """Return a randomly augmented copy of ``sample`` (perfusion + geometric + noise).

    Perfusion augmentation (Robben & Suetens 2018): a bolus delay shift and a peak
    concentration scaling of the whole series (the network must follow them with its AIF).
    Geometric: in-plane flips and 90-degree rotations applied to the series and both masks.
    Noise: additive Gaussian on the series. The true AIF, if present, gets the same delay and
    scaling.
    """
    ctc = sample.ctc
    brain, core = sample.brain_mask, sample.core_mask
    aif = sample.aif
    shift = rng.uniform(-config.max_shift_frames, config.max_shift_frames)
    scale = rng.uniform(*config.scale_range)
    if config.max_shift_frames > 0:
        ctc = shift_bolus(ctc, shift)
        aif = None if aif is None else shift_bolus(aif, shift)
    ctc = ctc * np.float32(scale)
    aif = None if aif is None else aif * scale
    if config.flip:
        for axis in (1, 2):
            if rng.random() < 0.5:
                ctc, brain, core = (np.flip(a, axis) for a in (ctc, brain, core))
    if config.rot90:
        k = int(rng.integers(0, 4))
        ctc, brain, core = (np.rot90(a, k, axes=(1, 2)) for a in (ctc, brain, core))
    if config.noise_std > 0:
        sigma = rng.uniform(0.0, config.noise_std)
        ctc = ctc + rng.normal(0.0, sigma, size=ctc.shape).astype(np.float32)
    return dataclasses.replace(
        sample,
        ctc=np.ascontiguousarray(ctc, dtype=np.float32),
        brain_mask=np.ascontiguousarray(brain),
        core_mask=np.ascontiguousarray(core),
        aif=aif,
    )
