"""4D flow series on disk: the 4DFlowNet HDF5 layout (read lazily, frame by frame) and NIfTI.

HDF5 layout (4DFlowNet)
-----------------------
============================ ================= ==============================================
dataset                      shape             meaning
============================ ================= ==============================================
``u``, ``v``, ``w``          ``(T, X, Y, Z)``  float32 velocity along X, Y, Z (m/s)
``mask``                     ``(T|1, X, Y, Z)`` fluid mask (0/1)
``dx``                       ``(T, 3)``        voxel size (mm)
``u_max``, ``v_max``, ...    ``(T,)``          high-res only: ``max |u|`` per frame (m/s)
``mag_u``, ``mag_v``, ...    ``(T, X, Y, Z)``  low-res only: magnitude images (a.u.)
``venc_u``, ``venc_v``, ...  ``(T,)``          low-res only: VENC per frame (m/s)
============================ ================= ==============================================

flowsr adds an optional root attribute ``dt_s`` (frame interval, s). Reading goes through
``medshared.io.hdf5.open_hdf5`` (lazy, sliceable) one frame at a time (:class:`FlowFile`);
writing through ``medshared.io.write_hdf5`` (atomic).

NIfTI
-----
One file per component, ``(X, Y, Z, T)`` (or ``(X, Y, Z)`` for one frame) in m/s, plus an
optional mask ``(X, Y, Z)``; transposed to ``(T, X, Y, Z)`` on reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowsr.errors import FlowsrError

COMPONENTS = ("u", "v", "w")


@dataclass(frozen=True, eq=False)
class FlowSeries:
    """A whole 4D flow series in memory.

    Attributes
    ----------
    velocity : np.ndarray
        ``(3, T, X, Y, Z)`` float32, m/s.
    mask : np.ndarray or None
        ``(T|1, X, Y, Z)`` bool.
    dx_mm : np.ndarray
        ``(3,)`` voxel size (mm).
    venc : np.ndarray or None
        ``(3, T)`` VENC (m/s), low-res series only.
    magnitude : np.ndarray or None
        ``(3, T, X, Y, Z)`` magnitude, low-res series only.
    dt_s : float or None
        Frame interval (s).
    affine : np.ndarray or None
        ``(4, 4)`` voxel -> RAS mm, for NIfTI series.
    """

    velocity: np.ndarray
    mask: np.ndarray | None
    dx_mm: np.ndarray
    venc: np.ndarray | None = None
    magnitude: np.ndarray | None = None
    dt_s: float | None = None
    affine: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.velocity.shape[1])


class FlowFile:
    """A 4DFlowNet-layout HDF5 file opened for lazy, frame-by-frame reading.

    Validates the layout on opening (datasets, axis counts, shapes, ``dx``, VENC); velocity
    values are checked for NaN/inf as each frame is read. Use as a context manager.

    Parameters
    ----------
    path : str or Path
        ``.h5`` / ``.hdf5`` file.
    """

    def __init__(self, path: str | Path) -> None:
        from medshared.io.hdf5 import open_hdf5

        self.path = Path(path)
        self._fh = open_hdf5(self.path)  # missing/corrupt file: medshared's one-line error
        try:
            self._validate()
        except BaseException:
            self._fh.close()
            raise

    def _err(self, msg: str) -> FlowsrError:
        return FlowsrError(f"{self.path}: {msg}")

    def _validate(self) -> None:
        fh = self._fh
        missing = [c for c in COMPONENTS if c not in fh]
        if missing:
            raise self._err(
                f"not a 4DFlowNet flow file: missing dataset(s) {missing} (needs u, v, w)"
            )
        shapes = {c: fh[c].shape for c in COMPONENTS}
        for c, s in shapes.items():
            if len(s) != 4:
                raise self._err(f"dataset {c!r} has {len(s)} axes {s}; expected (T, X, Y, Z)")
        if len(set(shapes.values())) != 1:
            raise self._err(f"u, v, w shapes differ: {shapes}")
        self.shape4 = tuple(int(n) for n in shapes["u"])
        n_t = self.shape4[0]
        self.has_mask = "mask" in fh
        if self.has_mask:
            ms = tuple(fh["mask"].shape)
            if len(ms) != 4 or ms[1:] != self.shape4[1:] or ms[0] not in (1, n_t):
                raise self._err(
                    f"mask shape {ms} does not match the velocity grid {self.shape4}; expected "
                    f"({n_t} or 1, {', '.join(map(str, self.shape4[1:]))})"
                )
        if "dx" not in fh:
            raise self._err("missing dataset 'dx' (T, 3) voxel size in mm")
        dx = np.asarray(fh["dx"][()], dtype=np.float64)
        if dx.ndim == 1 and dx.shape == (3,):
            dx = dx[None]
        if dx.ndim != 2 or dx.shape[1] != 3 or dx.shape[0] not in (1, n_t):
            raise self._err(f"dx shape {dx.shape}; expected ({n_t}, 3)")
        if not np.all(np.isfinite(dx)) or np.any(dx <= 0):
            raise self._err(f"dx must be positive and finite (mm), got {dx[0].tolist()}")
        if np.ptp(dx, axis=0).max() > 1e-6 * dx.max():
            raise self._err("dx changes between frames; one voxel size per series is required")
        self.dx_mm = dx[0]
        venc = [f"venc_{c}" for c in COMPONENTS]
        self.is_lowres = any(v in fh for v in venc)
        self.venc: np.ndarray | None = None
        if self.is_lowres:
            absent = [v for v in venc if v not in fh]
            if absent:
                raise self._err(f"low-res file lacks {absent}")
            arr = np.stack([np.asarray(fh[v][()], dtype=np.float64).reshape(-1) for v in venc])
            if arr.shape[1] == 1:
                arr = np.repeat(arr, n_t, axis=1)
            if arr.shape[1] != n_t:
                raise self._err(f"venc datasets have {arr.shape[1]} values; expected T = {n_t}")
            if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise self._err("a VENC is zero, negative or non-finite; VENC must be > 0 m/s")
            self.venc = arr.astype(np.float32)
        self.has_magnitude = all(f"mag_{c}" in fh for c in COMPONENTS)
        dt = fh.attrs.get("dt_s")
        self.dt_s = float(dt) if dt is not None else None

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return self.shape4[0]

    @property
    def grid(self) -> tuple[int, int, int]:
        """Spatial shape ``(X, Y, Z)``."""
        return self.shape4[1:]  # type: ignore[return-value]

    def frame(self, t: int) -> np.ndarray:
        """Velocity of frame ``t``: ``(3, X, Y, Z)`` float32 m/s (NaN/inf is an error)."""
        if not 0 <= t < self.n_frames:
            raise self._err(f"frame {t} out of range 0..{self.n_frames - 1}")
        out = np.stack([np.asarray(self._fh[c][t], dtype=np.float32) for c in COMPONENTS])
        if not np.all(np.isfinite(out)):
            bad = [c for c, a in zip(COMPONENTS, out, strict=True) if not np.all(np.isfinite(a))]
            raise self._err(f"non-finite velocity (NaN/inf) in {bad} at frame {t}")
        return out

    def mask_frame(self, t: int) -> np.ndarray | None:
        """Mask of frame ``t`` (``(X, Y, Z)`` bool), or None without a mask."""
        if not self.has_mask:
            return None
        m = self._fh["mask"]
        return np.asarray(m[t if m.shape[0] > 1 else 0]) > 0.5

    def magnitude_frame(self, t: int) -> np.ndarray | None:
        """Magnitude of frame ``t`` ``(3, X, Y, Z)``, or None."""
        if not self.has_magnitude:
            return None
        return np.stack([np.asarray(self._fh[f"mag_{c}"][t], np.float32) for c in COMPONENTS])

    def read(self, frames: Sequence[int] | None = None) -> FlowSeries:
        """Read ``frames`` (default all) into a :class:`FlowSeries`."""
        idx = list(range(self.n_frames)) if frames is None else list(frames)
        vel = np.stack([self.frame(t) for t in idx], axis=1)
        mask = None
        if self.has_mask:
            m = self._fh["mask"]
            mask = np.stack([self.mask_frame(t) for t in idx]) if m.shape[0] > 1 else (
                np.asarray(m[0:1]) > 0.5
            )
        mag = None
        if self.has_magnitude:
            mag = np.stack([self.magnitude_frame(t) for t in idx], axis=1)
        venc = None if self.venc is None else self.venc[:, idx]
        return FlowSeries(vel, mask, self.dx_mm.copy(), venc, mag, self.dt_s)

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __enter__(self) -> FlowFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_flow_h5(path: str | Path) -> FlowSeries:
    """Read a whole 4DFlowNet-layout HDF5 file (see :class:`FlowFile` for lazy reading)."""
    with FlowFile(path) as f:
        return f.read()


def check_series(series: FlowSeries, what: str) -> None:
    """Validate a series in memory (axis counts, finiteness, mask shape, dx, VENC)."""
    vel = series.velocity
    if vel.ndim != 5 or vel.shape[0] != 3:
        raise FlowsrError(f"{what}: velocity must be (3, T, X, Y, Z), got {vel.shape}")
    if not np.all(np.isfinite(vel)):
        raise FlowsrError(f"{what}: velocity contains NaN or inf")
    if series.mask is not None:
        m = series.mask
        if m.ndim != 4 or m.shape[1:] != vel.shape[2:] or m.shape[0] not in (1, vel.shape[1]):
            raise FlowsrError(f"{what}: mask shape {m.shape} does not match velocity {vel.shape}")
    dx = np.asarray(series.dx_mm, dtype=np.float64)
    if dx.shape != (3,) or not np.all(np.isfinite(dx)) or np.any(dx <= 0):
        raise FlowsrError(f"{what}: dx must be 3 positive voxel sizes (mm), got {dx}")
    if series.venc is not None:
        v = np.asarray(series.venc)
        if v.shape != (3, vel.shape[1]) or not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise FlowsrError(f"{what}: VENC must be (3, T) values > 0 m/s")


def write_flow_h5(path: str | Path, series: FlowSeries, *, compression: str | None = None) -> None:
    """Write ``series`` in the 4DFlowNet layout (atomic).

    A series with ``venc`` is written as low-res (``venc_*``, ``mag_*`` when present), one
    without as high-res (``u_max``...). ``dt_s`` becomes a root attribute.
    """
    from medshared.io import write_hdf5

    check_series(series, str(path))
    vel = series.velocity.astype(np.float32)
    n_t = vel.shape[1]
    arrays: dict[str, np.ndarray] = {c: vel[i] for i, c in enumerate(COMPONENTS)}
    arrays["dx"] = np.repeat(np.asarray(series.dx_mm, np.float32)[None], n_t, axis=0)
    if series.mask is not None:
        arrays["mask"] = series.mask.astype(np.float32)
    if series.venc is not None:
        for i, c in enumerate(COMPONENTS):
            arrays[f"venc_{c}"] = np.asarray(series.venc[i], np.float32)
            if series.magnitude is not None:
                arrays[f"mag_{c}"] = series.magnitude[i].astype(np.float32)
    else:
        for i, c in enumerate(COMPONENTS):
            arrays[f"{c}_max"] = np.abs(vel[i]).reshape(n_t, -1).max(axis=1)
    attrs = {"dt_s": float(series.dt_s)} if series.dt_s is not None else {}
    write_hdf5(path, arrays, attrs, compression=compression)


def read_flow_nifti(
    paths: Sequence[str | Path],
    mask_path: str | Path | None = None,
    dx_mm: Sequence[float] | None = None,
) -> FlowSeries:
    """Read a patient series from three NIfTI files (u, v, w), each ``(X, Y, Z[, T])`` in m/s.

    Parameters
    ----------
    paths : sequence of 3 paths
        Velocity components along the voxel axes X, Y, Z.
    mask_path : path, optional
        ``(X, Y, Z)`` or ``(X, Y, Z, T)`` fluid mask.
    dx_mm : sequence of 3 float, optional
        Expected voxel size (mm), e.g. from a paired HDF5 file; disagreeing with the header
        (by more than 0.1%) is an error.

    Returns
    -------
    FlowSeries
        Velocity ``(3, T, X, Y, Z)`` (transposed from NIfTI's ``(X, Y, Z, T)``), mask
        ``(T|1, X, Y, Z)``, ``dx_mm`` and ``dt_s`` from the header, and the affine.
    """
    from medshared.io import read_nifti

    if len(paths) != 3:
        raise FlowsrError(f"NIfTI input needs 3 files (u, v, w), got {len(paths)}")
    imgs = [read_nifti(p) for p in paths]
    arrays = []
    for p, img in zip(paths, imgs, strict=True):
        d = np.asarray(img.data, dtype=np.float32)
        if d.ndim == 3:
            d = d[..., None]
        if d.ndim != 4:
            raise FlowsrError(f"{p}: {d.ndim} axes {d.shape}; expected (X, Y, Z) or (X, Y, Z, T)")
        if not np.all(np.isfinite(d)):
            raise FlowsrError(f"{p}: non-finite velocity (NaN/inf)")
        arrays.append(np.moveaxis(d, 3, 0))
    if len({a.shape for a in arrays}) != 1:
        raise FlowsrError(
            f"u, v, w NIfTI shapes differ: {[a.shape for a in arrays]} ({', '.join(map(str, paths))})"
        )
    zooms = [np.asarray(img.zooms[:3], dtype=np.float64) for img in imgs]
    for p, z in zip(paths[1:], zooms[1:], strict=True):
        if not np.allclose(z, zooms[0], rtol=1e-3):
            raise FlowsrError(f"{p}: voxel size {z.tolist()} mm differs from {paths[0]}")
    if dx_mm is not None and not np.allclose(np.asarray(dx_mm, float), zooms[0], rtol=1e-3):
        raise FlowsrError(
            f"{paths[0]}: header voxel size {zooms[0].tolist()} mm disagrees with the given dx "
            f"{list(dx_mm)} mm"
        )
    vel = np.stack(arrays)
    mask = None
    if mask_path is not None:
        mimg = read_nifti(mask_path)
        m = np.asarray(mimg.data) > 0.5
        m = m[None] if m.ndim == 3 else np.moveaxis(m, 3, 0) if m.ndim == 4 else m
        if m.ndim != 4 or m.shape[1:] != vel.shape[2:] or m.shape[0] not in (1, vel.shape[1]):
            raise FlowsrError(
                f"{mask_path}: mask shape {np.asarray(mimg.data).shape} does not match the "
                f"velocity grid {vel.shape[2:]} x {vel.shape[1]} frames"
            )
        if not np.allclose(np.asarray(mimg.zooms[:3], float), zooms[0], rtol=1e-3):
            raise FlowsrError(f"{mask_path}: voxel size differs from the velocity files")
        mask = m
    dt = float(imgs[0].zooms[3]) if len(imgs[0].zooms) > 3 and imgs[0].zooms[3] > 0 else None
    return FlowSeries(vel, mask, zooms[0], None, None, dt, np.asarray(imgs[0].affine))


def write_flow_nifti(
    prefix: str | Path, series: FlowSeries, extra: dict[str, np.ndarray] | None = None
) -> list[Path]:
    """Write ``<prefix>_u.nii.gz``, ``_v``, ``_w`` (``(X, Y, Z, T)`` m/s), ``_mask`` and ``extra``.

    ``extra`` maps a suffix to an ``(T|1, X, Y, Z)`` array (e.g. ``"seg"``). Each file is written
    atomically. Returns the paths written.
    """
    from medshared.io import write_nifti

    check_series(series, str(prefix))
    affine = series.affine if series.affine is not None else np.diag([*series.dx_mm, 1.0])
    base = Path(prefix)
    name = base.name.removesuffix(".nii.gz").removesuffix(".nii")
    out = []
    items: list[tuple[str, np.ndarray]] = [
        (c, series.velocity[i]) for i, c in enumerate(COMPONENTS)
    ]
    if series.mask is not None:
        items.append(("mask", series.mask.astype(np.uint8)))
    items += list((extra or {}).items())
    for suffix, arr in items:
        p = base.with_name(f"{name}_{suffix}.nii.gz")
        data = np.moveaxis(np.asarray(arr), 0, 3)
        zooms: tuple[float, ...] = tuple(float(z) for z in series.dx_mm)
        if data.shape[3] == 1:
            data = data[..., 0]
        elif series.dt_s is not None:
            zooms = (*zooms, float(series.dt_s))
        write_nifti(p, data, affine, zooms=zooms)
        out.append(p)
    return out
