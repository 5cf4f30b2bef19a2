"""Streamline files: TrackVis ``.trk``, MRtrix ``.tck`` (nibabel) and ``.trx`` (trx-python).

Space, stated explicitly
------------------------
Streamlines are always returned and accepted as float32 ``(N_i, 3)`` arrays of **RAS+ world
coordinates in mm** (``Tractogram.space == "rasmm"``: nibabel's "RAS mm", dipy's
``Space.RASMM``), whatever the on-disk convention. The reference space (voxel -> RAS+ mm affine,
grid dimensions, voxel sizes) is kept for ``.trk`` and ``.trx``, so a read-then-write round trip
reproduces the file's space; ``.tck`` stores no reference.

Per-point and per-streamline data
---------------------------------
``.trk`` scalars/properties and ``.trx`` dpv/dps are kept: ``data_per_point[name]`` is a list
of ``(N_i, k)`` arrays aligned with the streamlines, ``data_per_streamline[name]`` one
``(n_streamlines, k)`` array; writing stores them again (``.tck`` has no such data and refuses
it). :func:`to_dipy` / :func:`from_dipy` convert to and from dipy's ``StatefulTractogram``
(extra ``dipy``). ``.trx`` needs the optional ``trx-python`` package (extra ``trx``).

Declared counts are checked before reading: a ``.trk`` header announcing more streamlines than
the file can hold, or a ``.trx`` header whose vertex/streamline counts disagree with its arrays,
is refused naming the file.
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
    reraise_write_errors,
)
from medshared.io._limits import check_allocation
from medshared.io._reading import captured_library_messages, read_errors
from medshared.io.atomic import atomic_path

__all__ = ["Tractogram", "from_dipy", "read_streamlines", "to_dipy", "write_streamlines"]

SPACE = "rasmm"
"""The one space of every :class:`Tractogram`: RAS+ world coordinates in mm."""

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
    data_per_point : dict of str to list of np.ndarray
        Per-point data (``.trk`` scalars, ``.trx`` dpv): for each name, one ``(N_i, k)`` array
        per streamline.
    data_per_streamline : dict of str to np.ndarray
        Per-streamline data (``.trk`` properties, ``.trx`` dps): ``(n_streamlines, k)``.
    space : str
        Always ``"rasmm"``: the points are RAS+ world mm, whatever the file stores.
    """

    streamlines: list[np.ndarray]
    affine: np.ndarray | None = None
    dimensions: tuple[int, int, int] | None = None
    voxel_sizes: tuple[float, float, float] | None = None
    header: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    data_per_point: dict[str, list[np.ndarray]] = field(default_factory=dict)
    data_per_streamline: dict[str, np.ndarray] = field(default_factory=dict)
    space: str = SPACE


def _split(data: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Split a ``(sum N_i, 3)`` point array into per-streamline float32 arrays (no Python math)."""
    data = np.ascontiguousarray(data, dtype=np.float32).reshape(-1, 3)
    if len(lengths) == 0:
        return []
    return np.split(data, np.cumsum(lengths[:-1]))


def _split_values(data: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Split ``(sum N_i, k)`` per-point values into per-streamline ``(N_i, k)`` arrays."""
    arr = np.asarray(data)
    arr = arr.reshape(len(arr), -1) if arr.ndim != 2 else arr
    if len(lengths) == 0:
        return []
    return np.split(np.ascontiguousarray(arr), np.cumsum(lengths[:-1]))


def _per_point(source: Any, lengths: np.ndarray) -> dict[str, list[np.ndarray]]:
    """nibabel/trx per-point ArraySequences -> name -> list of ``(N_i, k)`` arrays."""
    out: dict[str, list[np.ndarray]] = {}
    for key in source:
        seq = source[key]
        data = seq.get_data() if hasattr(seq, "get_data") else np.asarray(seq)
        out[str(key)] = _split_values(np.array(data), lengths)
    return out


def _per_streamline(source: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key in source:
        arr = np.array(source[key])
        out[str(key)] = arr.reshape(len(arr), -1) if arr.ndim != 2 else arr
    return out


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
    n = max(int(rec[Field.NB_STREAMLINES]), 0)
    room = (p.stat().st_size - TrkFile.HEADER_SIZE) // 4  # >= 4 bytes (the point count) each
    if n > room:
        raise MedsharedError(
            f"{_KIND} file {p}: truncated or corrupt header: it declares {n} streamlines, the "
            f"file can hold at most {max(room, 0)}"
        )
    return n


def _read_trx(p: Path) -> Tractogram:
    tmm = require("trx.trx_file_memmap", "trx")
    # check the archive first (CRC of every member): trx-python would fail half-way and leave a
    # temporary folder to the garbage collector
    with zipfile.ZipFile(p) as archive:
        _check_trx_claims(p, archive)
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
        dpp = _per_point(trx.data_per_vertex, lengths)
        dps = _per_streamline(trx.data_per_streamline)
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
        data_per_point=dpp,
        data_per_streamline=dps,
    )


def _check_trx_claims(p: Path, archive: zipfile.ZipFile) -> None:
    """header.json's NB_VERTICES/NB_STREAMLINES must agree with the arrays' member sizes, and
    the uncompressed members must fit in memory (trx-python extracts compressed archives)."""
    import json

    header_info = next((i for i in archive.infolist() if i.filename == "header.json"), None)
    if header_info is None:
        raise MedsharedError(f"{_KIND} file {p}: not a TRX archive (no header.json)")
    if header_info.file_size > 1 << 20:
        raise MedsharedError(f"{_KIND} file {p}: header.json is implausibly large")
    try:
        header = json.loads(archive.read(header_info))
        counts = {"positions": int(header["NB_VERTICES"]), "offsets": int(header["NB_STREAMLINES"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise MedsharedError(f"{_KIND} file {p}: bad header.json ({exc})") from exc
    for info in archive.infolist():
        parts = info.filename.split(".")
        if "/" in info.filename or parts[0] not in counts:
            continue
        try:
            itemsize = np.dtype(parts[-1]).itemsize
            per = int(parts[1]) if len(parts) == 3 else 1
        except (TypeError, ValueError) as exc:
            raise MedsharedError(f"{_KIND} file {p}: bad member name {info.filename!r}") from exc
        held = info.file_size // max(per * itemsize, 1)
        want = counts[parts[0]]
        # offsets hold NB_STREAMLINES entries, plus the end sentinel in newer writers
        if held != want and not (parts[0] == "offsets" and held == want + 1):
            what = "vertices" if parts[0] == "positions" else "streamlines"
            raise MedsharedError(
                f"{_KIND} file {p}: header.json declares {want} {what}, but "
                f"{info.filename} holds {held}; the file is corrupt"
            )
    check_allocation(sum(i.file_size for i in archive.infolist()) * 2, p, "TRX arrays")


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
        ``streamlines`` (list of float32 ``(N_i, 3)``, RAS+ mm; ``space == "rasmm"``),
        ``affine``/``dimensions``/``voxel_sizes`` of the reference space (None for ``.tck``),
        ``data_per_point`` / ``data_per_streamline`` (``.trk`` scalars/properties, ``.trx``
        dpv/dps; empty for ``.tck``), ``header``, ``path``.

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
    with read_errors(p, _KIND, _LIB_ERRORS), captured_library_messages("nibabel", "trx"):
        if suffix == ".trx":
            out = _read_trx(p)
        else:
            n_declared = _trk_declared_count(p) if suffix == ".trk" else 0
            check_allocation(2 * p.stat().st_size, p, "streamline points")
            tfile = nib.streamlines.load(str(p), lazy_load=False)
            seq = tfile.streamlines
            lengths = np.asarray(seq._lengths, dtype=np.int64)
            header = dict(tfile.header)
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
                data_per_point=_per_point(tfile.tractogram.data_per_point, lengths),
                data_per_streamline=_per_streamline(tfile.tractogram.data_per_streamline),
            )
    if not allow_nonfinite and out.streamlines:
        check_finite(np.concatenate(out.streamlines), p, _KIND)
    return out


def _reference_space(
    reference: Any, p: Path
) -> tuple[np.ndarray, tuple[int, int, int], tuple[float, float, float]]:
    """Return (affine, dimensions, voxel_sizes) from a Tractogram, an Image or a file path."""
    from medshared.io.image import Image, read_image

    if isinstance(reference, str | Path):
        ref_path = Path(reference)
        if ref_path.suffix.lower() in (".trk", ".trx"):
            reference = read_streamlines(ref_path)
        else:
            reference = read_image(ref_path)
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
    if isinstance(reference, Image):
        affine = np.asarray(reference.affine, dtype=np.float64)
        dims = tuple(int(d) for d in (reference.data.shape + (1, 1))[:3])
        return affine, dims, tuple(float(z) for z in reference.spacing)  # type: ignore[return-value]
    raise MedsharedError(
        f"{_KIND} file {p}: reference must be a Tractogram, Image or file path, "
        f"got {type(reference).__name__}"
    )


def _prepared_data(
    p: Path,
    n: int,
    lengths: np.ndarray,
    data_per_point: dict[str, Sequence[np.ndarray]],
    data_per_streamline: dict[str, np.ndarray],
) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray]]:
    """Check per-point/per-streamline data against the streamlines; return 2D arrays."""
    dpp: dict[str, list[np.ndarray]] = {}
    for key, values in data_per_point.items():
        arrays = [np.asarray(v) for v in values]
        arrays = [a.reshape(len(a), -1) if a.ndim != 2 else a for a in arrays]
        got = np.array([len(a) for a in arrays], dtype=np.int64)
        if len(arrays) != n or not np.array_equal(got, lengths):
            raise MedsharedError(
                f"{_KIND} file {p}: data_per_point[{key!r}] must hold one (N_i, k) array per "
                f"streamline ({n} streamlines), with N_i points each"
            )
        dpp[str(key)] = arrays
    dps: dict[str, np.ndarray] = {}
    for key, values in data_per_streamline.items():
        arr = np.asarray(values)
        arr = arr.reshape(len(arr), -1) if arr.ndim != 2 else arr
        if len(arr) != n:
            raise MedsharedError(
                f"{_KIND} file {p}: data_per_streamline[{key!r}] has {len(arr)} rows for "
                f"{n} streamlines"
            )
        dps[str(key)] = arr
    return dpp, dps


def write_streamlines(
    path: PathLike,
    streamlines: Sequence[np.ndarray] | Tractogram,
    reference: Any = None,
    *,
    data_per_point: dict[str, Sequence[np.ndarray]] | None = None,
    data_per_streamline: dict[str, np.ndarray] | None = None,
    allow_nonfinite: bool = False,
) -> None:
    """Write streamlines (RAS+ mm) to ``.trk``, ``.tck`` or ``.trx``, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target file; the format follows the extension (the folder must exist).
    streamlines : sequence of np.ndarray or Tractogram
        ``(N_i, 3)`` arrays of RAS+ world coordinates in mm (stored as float32), or a
        :class:`Tractogram`, whose space and data are then the defaults.
    reference : Tractogram, Image, str or PathLike, optional
        Reference space (affine, dimensions, voxel sizes): a read ``.trk``/``.trx``
        :class:`Tractogram`, a :class:`~medshared.io.image.Image`, or the path of a NIfTI,
        ``.trk`` or ``.trx`` file. Required for ``.trk`` and ``.trx``; ignored for ``.tck``.
    data_per_point : dict of str to sequence of np.ndarray, optional
        Per-point values: one ``(N_i, k)`` (or ``(N_i,)``) array per streamline per name
        (``.trk`` scalars, ``.trx`` dpv).
    data_per_streamline : dict of str to np.ndarray, optional
        Per-streamline values ``(n_streamlines, k)`` (``.trk`` properties, ``.trx`` dps).
    allow_nonfinite : bool
        NaN/inf coordinates are rejected unless True.

    Raises
    ------
    MedsharedError
        Wrong extension, a streamline that is not ``(N, 3)``, non-finite points, missing or bad
        reference, data that do not match the streamlines, data for ``.tck`` (which cannot hold
        them), or a write failure (the target is then left untouched). MissingExtraError for
        ``.trx`` without ``trx-python``.
    """
    p = check_suffix(path, STREAMLINE_SUFFIXES, _KIND)
    suffix = p.suffix.lower()
    if isinstance(streamlines, Tractogram):
        source = streamlines
        if reference is None and source.affine is not None:
            reference = source
        if data_per_point is None:
            data_per_point = source.data_per_point
        if data_per_streamline is None:
            data_per_streamline = source.data_per_streamline
        streamlines = source.streamlines
    arrays = [np.asarray(s, dtype=np.float32) for s in streamlines]
    bad = [i for i, s in enumerate(arrays) if s.ndim != 2 or s.shape[1] != 3 or len(s) == 0]
    if bad:
        raise MedsharedError(
            f"{_KIND} file {p}: streamline {bad[0]} has shape {arrays[bad[0]].shape}; "
            "expected (N, 3) with N >= 1"
        )
    if arrays and not allow_nonfinite:
        check_finite(np.concatenate(arrays), p, _KIND)
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    dpp, dps = _prepared_data(
        p, len(arrays), lengths, data_per_point or {}, data_per_streamline or {}
    )
    if suffix == ".trk" and any(a.dtype.kind not in "fiub" for a in [*dps.values()]):
        raise MedsharedError(f"{_KIND} file {p}: .trk data must be numeric")
    tractogram = _NibTractogram(
        arrays, data_per_point=dpp, data_per_streamline=dps, affine_to_rasmm=np.eye(4)
    )
    if suffix == ".tck":
        if dpp or dps:
            raise MedsharedError(
                f"{_KIND} file {p}: .tck cannot store per-point or per-streamline data "
                f"({sorted([*dpp, *dps])}); write .trk or .trx"
            )
        with reraise_write_errors(p, _KIND), atomic_path(p) as tmp:
            nib.streamlines.save(tractogram, str(tmp))
        return
    if reference is None:
        raise MedsharedError(
            f"{_KIND} file {p}: {suffix} needs a reference space; pass reference= a Tractogram, "
            "Image or NIfTI path"
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
            try:
                nib.streamlines.save(tractogram, str(tmp), header=header)
            except (ValueError, HeaderError, DataError) as exc:  # e.g. > 10 scalar names
                raise MedsharedError(f"{_KIND} file {p}: cannot write .trk ({exc})") from exc
        return
    tmm = require("trx.trx_file_memmap", "trx")
    ref_header = nib.Nifti1Header()
    ref_header.set_data_shape(dims)
    ref_header.set_zooms(vox)
    ref_header.set_sform(affine, code=1)
    ref_header.set_qform(affine, code=1)
    dtypes = {
        "positions": np.float32,
        "offsets": np.uint32,
        "dpv": {k: v[0].dtype if v else np.float32 for k, v in dpp.items()},
        "dps": {k: v.dtype for k, v in dps.items()},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # trx-python's own temporary folders
        trx = tmm.TrxFile.from_tractogram(tractogram, reference=ref_header, dtype_dict=dtypes)
        try:
            trx.header["VOXEL_TO_RASMM"] = affine.tolist()
            with reraise_write_errors(p, _KIND), atomic_path(p) as tmp:
                tmm.save(trx, str(tmp))
        finally:
            trx.close()


def to_dipy(tractogram: Tractogram) -> Any:
    """A dipy ``StatefulTractogram`` (``Space.RASMM``) of ``tractogram``, with its data.

    Needs the reference space (not a ``.tck``) and dipy (extra ``dipy``).
    """
    sft_mod = require("dipy.io.stateful_tractogram", "dipy")
    if tractogram.affine is None or tractogram.dimensions is None:
        raise MedsharedError(
            f"{_KIND} file {tractogram.path}: no reference space (a .tck); dipy needs one"
        )
    affine = np.asarray(tractogram.affine, dtype=np.float64)
    vox = tractogram.voxel_sizes or _voxel_sizes(affine)
    reference = (affine, tuple(tractogram.dimensions), tuple(vox), "".join(aff2axcodes(affine)))
    return sft_mod.StatefulTractogram(
        list(tractogram.streamlines),
        reference,
        sft_mod.Space.RASMM,
        data_per_point={k: list(v) for k, v in tractogram.data_per_point.items()},
        data_per_streamline=dict(tractogram.data_per_streamline),
    )


def from_dipy(sft: Any) -> Tractogram:
    """A :class:`Tractogram` (RAS+ mm) from a dipy ``StatefulTractogram`` in any space."""
    space, origin = sft.space, sft.origin
    sft.to_rasmm()
    sft.to_center()
    try:
        seq = sft.streamlines
        lengths = np.asarray(seq._lengths, dtype=np.int64)
        data = seq.get_data() if len(lengths) else np.zeros((0, 3), np.float32)
        affine, dims, vox, _ = sft.space_attributes
        out = Tractogram(
            streamlines=_split(data, lengths),
            affine=np.asarray(affine, dtype=np.float64),
            dimensions=tuple(int(d) for d in dims),  # type: ignore[arg-type]
            voxel_sizes=tuple(float(v) for v in vox),  # type: ignore[arg-type]
            data_per_point=_per_point(sft.data_per_point, lengths),
            data_per_streamline=_per_streamline(sft.data_per_streamline),
        )
    finally:
        sft.to_space(space)
        sft.to_origin(origin)
    return out
