"""Streamline files: TrackVis ``.trk``, MRtrix ``.tck`` (nibabel) and ``.trx`` (trx-python).

Streamlines are always returned and accepted as float32 ``(N_i, 3)`` arrays of **RAS+ world
coordinates in mm** (nibabel's "RAS mm" space), whatever the on-disk convention. The reference
space (voxel -> RAS+ mm affine, grid dimensions, voxel sizes) is kept for ``.trk`` and ``.trx``,
so a read-then-write round trip reproduces the file's space; ``.tck`` stores no reference.
``.trx`` needs the optional ``trx-python`` package (extra ``trx``).
"""

from __future__ import annotations

import struct
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.orientations import aff2axcodes
from nibabel.streamlines import Field
from nibabel.streamlines.tractogram import Tractogram as _NibTractogram
from nibabel.streamlines.tractogram_file import DataError, HeaderError
from nibabel.streamlines.trk import TrkFile, header_2_dtype

from medshared.errors import MedsharedError, require
from medshared.io._checks import (
    PathLike,
    check_finite,
    check_input_file,
    check_suffix,
    reraise_as_corrupt,
    reraise_write_errors,
)
from medshared.io.atomic import atomic_path

__all__ = ["Tractogram", "read_streamlines", "write_streamlines"]

STREAMLINE_SUFFIXES = (".trk", ".tck", ".trx")
_KIND = "streamlines"
_LIB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    struct.error,
    zipfile.BadZipFile,
    DataError,
    HeaderError,
)


@dataclass(frozen=True, eq=False)
class Tractogram:
    """Streamlines plus their reference space.

    Attributes
    ----------
    streamlines : list of np.ndarray
        One float32 array of shape ``(N_i, 3)`` per streamline, RAS+ world coordinates in mm.
    affine : np.ndarray or None
        ``(4, 4)`` float64 voxel -> RAS+ mm of the reference image (None for ``.tck``).
    dimensions : tuple of 3 int or None
        Reference grid size ``(X, Y, Z)`` in voxels (None for ``.tck``).
    voxel_sizes : tuple of 3 float or None
        Reference voxel sizes in mm (None for ``.tck``).
    header : dict
        The format's own header fields as read (nibabel/trx names), for inspection.
    path : Path or None
        File read.
    """

    streamlines: list[np.ndarray]
    affine: np.ndarray | None = None
    dimensions: tuple[int, int, int] | None = None
    voxel_sizes: tuple[float, float, float] | None = None
    header: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _split(data: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Split a ``(sum N_i, 3)`` point array into per-streamline float32 arrays (no Python math)."""
    data = np.ascontiguousarray(data, dtype=np.float32).reshape(-1, 3)
    if len(lengths) == 0:
        return []
    return np.split(data, np.cumsum(lengths[:-1]))


def _voxel_sizes(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]


def _trk_declared_count(p: Path) -> int:
    """Streamline count in a .trk header as written on disk (0 = unknown).

    nibabel overwrites the header count with the number it managed to read, so a file cut at a
    streamline boundary would otherwise go unnoticed. (A cut ``.tck`` misses its end marker and
    nibabel already rejects it.)
    """
    dtype = header_2_dtype
    with open(p, "rb") as fh:
        raw = fh.read(dtype.itemsize)
    if len(raw) < dtype.itemsize:
        return 0
    rec = np.frombuffer(raw, dtype=dtype)[0]
    if int(rec["hdr_size"]) != TrkFile.HEADER_SIZE:
        rec = np.frombuffer(raw, dtype=dtype.newbyteorder())[0]
    return max(int(rec[Field.NB_STREAMLINES]), 0)


def _read_trx(p: Path) -> Tractogram:
    tmm = require("trx.trx_file_memmap", "trx")
    # check the archive first (CRC of every member): trx-python would fail half-way and leave a
    # temporary folder to the garbage collector
    with zipfile.ZipFile(p) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise MedsharedError(f"{_KIND} file {p}: cannot read, member {bad!r} is corrupt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # trx-python's own temporary folders
        trx = tmm.load(str(p))
    try:
        seq = trx.streamlines
        data = np.array(seq.get_data(), dtype=np.float32)
        lengths = np.asarray(seq._lengths, dtype=np.int64)
        header = dict(trx.header)
    finally:
        trx.close()
    affine = np.asarray(header["VOXEL_TO_RASMM"], dtype=np.float64)
    dims = tuple(int(d) for d in header["DIMENSIONS"])
    return Tractogram(
        streamlines=_split(data, lengths),
        affine=affine,
        dimensions=dims,  # type: ignore[arg-type]
        voxel_sizes=_voxel_sizes(affine),
        header=header,
        path=p,
    )


def read_streamlines(path: PathLike, *, allow_nonfinite: bool = True) -> Tractogram:
    """Read a ``.trk``, ``.tck`` or ``.trx`` file.

    Parameters
    ----------
    path : str or PathLike
        Streamline file; the format follows the extension.
    allow_nonfinite : bool
        If False, NaN or +-inf coordinates raise.

    Returns
    -------
    Tractogram
        ``streamlines`` (list of float32 ``(N_i, 3)``, RAS+ mm), ``affine``/``dimensions``/
        ``voxel_sizes`` of the reference space (None for ``.tck``), ``header``, ``path``.

    Raises
    ------
    MedsharedError
        Naming the file, for: wrong extension, missing file, corrupt/truncated file (including a
        ``.trk`` holding fewer streamlines than its header announces), non-finite coordinates when
        ``allow_nonfinite=False``. :class:`~medshared.errors.MissingExtraError` for ``.trx``
        without ``trx-python``.
    """
    p = check_input_file(path, STREAMLINE_SUFFIXES, _KIND)
    suffix = p.suffix.lower()
    with reraise_as_corrupt(p, _KIND, _LIB_ERRORS):
        if suffix == ".trx":
            out = _read_trx(p)
        else:
            tfile = nib.streamlines.load(str(p), lazy_load=False)
            seq = tfile.streamlines
            lengths = np.asarray(seq._lengths, dtype=np.int64)
            header = dict(tfile.header)
            n_declared = _trk_declared_count(p) if suffix == ".trk" else 0
            if n_declared and n_declared != len(lengths):
                raise MedsharedError(
                    f"{_KIND} file {p}: truncated ({len(lengths)} streamlines read, header "
                    f"announces {n_declared})"
                )
            data = seq.get_data() if len(lengths) else np.zeros((0, 3), np.float32)
            affine = dims = vox = None
            if suffix == ".trk":
                affine = np.asarray(header[Field.VOXEL_TO_RASMM], dtype=np.float64)
                dims = tuple(int(d) for d in header[Field.DIMENSIONS])
                vox = tuple(float(v) for v in header[Field.VOXEL_SIZES])
            out = Tractogram(
                streamlines=_split(data, lengths),
                affine=affine,
                dimensions=dims,  # type: ignore[arg-type]
                voxel_sizes=vox,  # type: ignore[arg-type]
                header=header,
                path=p,
            )
    if not allow_nonfinite and out.streamlines:
        check_finite(np.concatenate(out.streamlines), p, _KIND)
    return out


def _reference_space(
    reference: Any, p: Path
) -> tuple[np.ndarray, tuple[int, int, int], tuple[float, float, float]]:
    """Return (affine, dimensions, voxel_sizes) from a Tractogram, NiftiImage or a file path."""
    from medshared.io.nifti import NiftiImage, read_nifti

    if isinstance(reference, str | Path):
        ref_path = Path(reference)
        if ref_path.suffix.lower() in (".trk", ".trx"):
            reference = read_streamlines(ref_path)
        else:
            reference = read_nifti(ref_path)
    if isinstance(reference, Tractogram):
        if reference.affine is None or reference.dimensions is None:
            raise MedsharedError(
                f"{_KIND} file {p}: the reference tractogram has no space (a .tck); pass a "
                "NIfTI image as reference"
            )
        affine = np.asarray(reference.affine, dtype=np.float64)
        dims = tuple(int(d) for d in reference.dimensions)
        vox = (
            tuple(float(v) for v in reference.voxel_sizes)
            if reference.voxel_sizes is not None
            else _voxel_sizes(affine)
        )
        return affine, dims, vox  # type: ignore[return-value]
    if isinstance(reference, NiftiImage):
        affine = np.asarray(reference.affine, dtype=np.float64)
        dims = tuple(int(d) for d in reference.data.shape[:3])
        return affine, dims, tuple(float(z) for z in reference.zooms[:3])  # type: ignore[return-value]
    raise MedsharedError(
        f"{_KIND} file {p}: reference must be a Tractogram, NiftiImage or file path, "
        f"got {type(reference).__name__}"
    )


def write_streamlines(
    path: PathLike,
    streamlines: Sequence[np.ndarray],
    reference: Any = None,
    *,
    allow_nonfinite: bool = False,
) -> None:
    """Write streamlines (RAS+ mm) to ``.trk``, ``.tck`` or ``.trx``, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target file; the format follows the extension (the folder must exist).
    streamlines : sequence of np.ndarray
        ``(N_i, 3)`` arrays of RAS+ world coordinates in mm (stored as float32).
    reference : Tractogram, NiftiImage, str or PathLike, optional
        Reference space (affine, dimensions, voxel sizes): a read ``.trk``/``.trx``
        :class:`Tractogram`, a :class:`~medshared.io.nifti.NiftiImage`, or the path of a NIfTI,
        ``.trk`` or ``.trx`` file. Required for ``.trk`` and ``.trx``; ignored for ``.tck``.
    allow_nonfinite : bool
        NaN/inf coordinates are rejected unless True.

    Raises
    ------
    MedsharedError
        Wrong extension, a streamline that is not ``(N, 3)``, non-finite points, missing or bad
        reference, or a write failure (the target is then left untouched). MissingExtraError for
        ``.trx`` without ``trx-python``.
    """
    p = check_suffix(path, STREAMLINE_SUFFIXES, _KIND)
    suffix = p.suffix.lower()
    arrays = [np.asarray(s, dtype=np.float32) for s in streamlines]
    bad = [i for i, s in enumerate(arrays) if s.ndim != 2 or s.shape[1] != 3 or len(s) == 0]
    if bad:
        raise MedsharedError(
            f"{_KIND} file {p}: streamline {bad[0]} has shape {arrays[bad[0]].shape}; "
            "expected (N, 3) with N >= 1"
        )
    if arrays and not allow_nonfinite:
        check_finite(np.concatenate(arrays), p, _KIND)
    tractogram = _NibTractogram(arrays, affine_to_rasmm=np.eye(4))
    if suffix == ".tck":
        with reraise_write_errors(p, _KIND), atomic_path(p) as tmp:
            nib.streamlines.save(tractogram, str(tmp))
        return
    if reference is None:
        raise MedsharedError(
            f"{_KIND} file {p}: {suffix} needs a reference space; pass reference= a Tractogram, "
            "NiftiImage or NIfTI path"
        )
    affine, dims, vox = _reference_space(reference, p)
    if suffix == ".trk":
        header = {
            Field.VOXEL_TO_RASMM: affine,
            Field.DIMENSIONS: np.asarray(dims, dtype=np.int16),
            Field.VOXEL_SIZES: np.asarray(vox, dtype=np.float32),
            Field.VOXEL_ORDER: "".join(aff2axcodes(affine)),
        }
        with reraise_write_errors(p, _KIND), atomic_path(p) as tmp:
            nib.streamlines.save(tractogram, str(tmp), header=header)
        return
    tmm = require("trx.trx_file_memmap", "trx")
    ref_header = nib.Nifti1Header()
    ref_header.set_data_shape(dims)
    ref_header.set_zooms(vox)
    ref_header.set_sform(affine, code=1)
    ref_header.set_qform(affine, code=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # trx-python's own temporary folders
        trx = tmm.TrxFile.from_tractogram(tractogram, reference=ref_header)
        try:
            trx.header["VOXEL_TO_RASMM"] = affine.tolist()
            with reraise_write_errors(p, _KIND), atomic_path(p) as tmp:
                tmm.save(trx, str(tmp))
        finally:
            trx.close()
