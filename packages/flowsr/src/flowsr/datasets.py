"""Training series and the patch dataset (CFD: velocity + segmentation; MRI: segmentation only).

Normalisation: every patch is divided by one scalar per series and frame, ``s = max_c venc_c``
(m/s), for the low-res input and the high-res target alike, so the network works in units of
VENC and a rotation (which mixes components) stays consistent. Predictions are multiplied by
``s`` again (:mod:`flowsr.predict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowsr.augment import PATCH_ROTATIONS, keeps_shape, rotate_scalar, rotate_vector
from flowsr.config import DownsampleConfig, PatchConfig
from flowsr.downsample import downsample
from flowsr.errors import FlowsrError
from flowsr.patches import sample_corners
from flowsr.phantom import FlowPhantom
from flowsr.wmf import wmf_feature

FACTOR = 2


@dataclass(frozen=True, eq=False)
class TrainSeries:
    """One series prepared for patch sampling.

    Attributes
    ----------
    name : str
        Where it came from (file or phantom seed), for messages.
    kind : {"cfd", "mri"}
        CFD series have a high-res velocity target; MRI series only a segmentation.
    lr_velocity : np.ndarray
        ``(3, T, x, y, z)`` float32 m/s.
    scale : np.ndarray
        ``(T,)`` normalisation (max VENC over components, m/s).
    wmf : np.ndarray or None
        ``(x, y, z)`` WMF feature (None for fewer than 3 frames).
    lr_mask : np.ndarray
        ``(T|1, x, y, z)`` bool, for the coverage rules.
    seg : np.ndarray
        ``(T|1, X, Y, Z)`` bool high-res segmentation target (MRI: nearest-upsampled low-res mask).
    hr_velocity : np.ndarray or None
        ``(3, T, X, Y, Z)`` float32 m/s (CFD only).
    """

    name: str
    kind: str
    lr_velocity: np.ndarray
    scale: np.ndarray
    wmf: np.ndarray | None
    lr_mask: np.ndarray
    seg: np.ndarray
    hr_velocity: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        """Frames T."""
        return int(self.lr_velocity.shape[1])


def _wmf_or_none(vel: np.ndarray, name: str) -> np.ndarray | None:
    return wmf_feature(vel, name) if vel.shape[1] >= 3 else None


def series_from_phantom(
    phantom: FlowPhantom,
    config: DownsampleConfig | None = None,
    rng: np.random.Generator | None = None,
    name: str = "phantom",
) -> TrainSeries:
    """A CFD training series from a phantom, low-res made by :func:`flowsr.downsample.downsample`."""
    cfg = config or DownsampleConfig(factor=FACTOR)
    if cfg.factor != FACTOR:
        raise FlowsrError(f"SURFR-Net upsamples by {FACTOR}; the downsampling factor must be {FACTOR}")
    lr = downsample(phantom.velocity, phantom.mask, phantom.dx_mm, cfg, rng)
    return TrainSeries(
        name, "cfd", lr.velocity, lr.venc.max(axis=0), _wmf_or_none(lr.velocity, name),
        lr.mask[None], phantom.mask[None], phantom.velocity,
    )


def mri_from_phantom(
    phantom: FlowPhantom,
    config: DownsampleConfig | None = None,
    rng: np.random.Generator | None = None,
    name: str = "mri-phantom",
) -> TrainSeries:
    """An MRI-like (segmentation-only) series: low-res from a phantom, no high-res velocity, and
    the low-res mask upsampled by nearest neighbour as the target (as the paper's MRI labels)."""
    s = series_from_phantom(phantom, config, rng, name)
    seg = s.lr_mask.repeat(FACTOR, 1).repeat(FACTOR, 2).repeat(FACTOR, 3)
    return TrainSeries(name, "mri", s.lr_velocity, s.scale, s.wmf, s.lr_mask, seg, None)


def series_from_files(lr_path: str | Path, hr_path: str | Path | None = None) -> TrainSeries:
    """A training series from 4DFlowNet HDF5 files: low-res (needs VENC) plus, for CFD, high-res.

    Without ``hr_path`` the series is MRI (segmentation only) and the low-res file needs a mask.
    """
    from flowsr.flowio import read_flow_h5

    lr = read_flow_h5(lr_path)
    if lr.venc is None:
        raise FlowsrError(f"{lr_path}: not a low-res file (no venc_u/venc_v/venc_w datasets)")
    if hr_path is None:
        if lr.mask is None:
            raise FlowsrError(f"{lr_path}: an MRI training series needs a 'mask' dataset")
        seg = lr.mask.repeat(FACTOR, 1).repeat(FACTOR, 2).repeat(FACTOR, 3)
        return TrainSeries(str(lr_path), "mri", lr.velocity, lr.venc.max(axis=0),
                           _wmf_or_none(lr.velocity, str(lr_path)), lr.mask, seg, None)
    hr = read_flow_h5(hr_path)
    if hr.mask is None:
        raise FlowsrError(f"{hr_path}: a high-res CFD file needs a 'mask' dataset")
    want = tuple(FACTOR * n for n in lr.velocity.shape[2:])
    if hr.velocity.shape[2:] != want or hr.n_frames != lr.n_frames:
        raise FlowsrError(
            f"{hr_path}: grid {hr.velocity.shape[2:]} x {hr.n_frames} frames does not match "
            f"{FACTOR}x the low-res {lr_path} ({want} x {lr.n_frames} frames)"
        )
    xs, ys, zs = lr.velocity.shape[2:]
    m = hr.mask.reshape(hr.mask.shape[0], xs, FACTOR, ys, FACTOR, zs, FACTOR).mean(axis=(2, 4, 6))
    return TrainSeries(str(lr_path), "cfd", lr.velocity, lr.venc.max(axis=0),
                       _wmf_or_none(lr.velocity, str(lr_path)), m >= 0.5, hr.mask, hr.velocity)


def build_index(
    series: Sequence[TrainSeries], patch: PatchConfig, rng: np.random.Generator,
    kinds: Sequence[str] = ("cfd", "mri"),
) -> np.ndarray:
    """Patch index rows ``(series, frame, x0, y0, z0, rotation)`` following the coverage rules.

    CFD patches are repeated for every shape-keeping rotation of :data:`PATCH_ROTATIONS`
    (identity included) when ``patch.rotations`` is set.
    """
    size = (patch.size_x, patch.size_y, patch.size_z)
    rots = [i for i, r in enumerate(PATCH_ROTATIONS) if keeps_shape(r, size)]
    rows = []
    for i, s in enumerate(series):
        if s.kind not in kinds:
            continue
        corners = sample_corners(s.lr_mask, s.n_frames, s.kind, patch, rng, s.name)
        use = rots if (s.kind == "cfd" and patch.rotations) else [0]
        for r in use:
            rows.append(np.concatenate(
                [np.full((len(corners), 1), i), corners, np.full((len(corners), 1), r)], axis=1
            ))
    if not rows:
        raise FlowsrError("training: no series of a usable kind (CFD needed for an SR-only model)")
    return np.concatenate(rows).astype(np.int64)


class PatchDataset:
    """Map-style dataset of patches (a ``torch.utils.data.Dataset`` by protocol).

    Each item is a dict of float32 tensors: ``input`` ``(3|4, px, py, pz)`` (velocity / s and,
    with ``use_wmf``, WMF), ``target`` ``(3, 2px, 2py, 2pz)`` (zeros for MRI), ``seg``
    ``(1, 2px, 2py, 2pz)`` and ``is_cfd`` (scalar 1.0 / 0.0).
    """

    def __init__(
        self, series: Sequence[TrainSeries], index: np.ndarray, patch: PatchConfig, use_wmf: bool
    ) -> None:
        self.series = list(series)
        self.index = np.asarray(index, dtype=np.int64)
        self.size = (patch.size_x, patch.size_y, patch.size_z)
        self.use_wmf = use_wmf
        if use_wmf:
            for s in self.series:
                if s.wmf is None:
                    raise FlowsrError(
                        f"{s.name}: WMF needs the time axis (at least 3 frames), the series has "
                        f"{s.n_frames}; train without WMF (--no-model-use-wmf)"
                    )

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def __getitem__(self, i: int) -> dict:
        import torch

        si, t, x0, y0, z0, r = (int(v) for v in self.index[i])
        s = self.series[si]
        px, py, pz = self.size
        rot = PATCH_ROTATIONS[r]
        lo = (slice(x0, x0 + px), slice(y0, y0 + py), slice(z0, z0 + pz))
        hi = tuple(slice(FACTOR * a.start, FACTOR * a.stop) for a in lo)
        scale = float(s.scale[t])
        vel = rotate_vector(s.lr_velocity[(slice(None), t, *lo)] / scale, rot)
        chans = [vel]
        if self.use_wmf:
            chans.append(rotate_scalar(s.wmf[lo], rot)[None])
        seg = s.seg[(t if s.seg.shape[0] > 1 else 0, *hi)]
        if s.hr_velocity is not None:
            target = rotate_vector(s.hr_velocity[(slice(None), t, *hi)] / scale, rot)
        else:
            target = np.zeros((3, FACTOR * px, FACTOR * py, FACTOR * pz), np.float32)
        return {
            "input": torch.from_numpy(np.ascontiguousarray(np.concatenate(chans), np.float32)),
            "target": torch.from_numpy(np.ascontiguousarray(target, np.float32)),
            "seg": torch.from_numpy(np.ascontiguousarray(rotate_scalar(seg, rot)[None], np.float32)),
            "is_cfd": torch.tensor(1.0 if s.kind == "cfd" else 0.0),
        }
