"""HDF5 files (``.h5``, ``.hdf5``) of named arrays plus file-level attributes, via h5py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from medshared.errors import MedsharedError
from medshared.io._checks import (
    PathLike,
    check_finite,
    check_input_file,
    check_suffix,
    reraise_as_corrupt,
    reraise_write_errors,
)
from medshared.io.atomic import atomic_path

__all__ = ["Hdf5Content", "read_hdf5", "write_hdf5"]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_KIND = "HDF5"
_LIB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    KeyError,
    ValueError,
    TypeError,
    RuntimeError,
)


@dataclass(frozen=True, eq=False)
class Hdf5Content:
    """Arrays and attributes read from an HDF5 file.

    Attributes
    ----------
    arrays : dict of str to np.ndarray
        Datasets by name; nested datasets are named by their path without the leading slash
        (``"group/name"``). Shapes and dtypes as stored.
    attrs : dict of str to Any
        File-level (root group) attributes; numpy scalars become Python scalars, arrays stay
        arrays, strings are ``str``.
    path : Path or None
        File read.
    """

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _attr_to_python(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_hdf5(
    path: PathLike, names: Sequence[str] | None = None, *, allow_nonfinite: bool = True
) -> Hdf5Content:
    """Read datasets and root attributes from an HDF5 file.

    Parameters
    ----------
    path : str or PathLike
        ``.h5`` / ``.hdf5`` / ``.hdf`` file.
    names : sequence of str, optional
        Datasets to read (``"group/name"`` for nested ones); default: every dataset.
    allow_nonfinite : bool
        If False, NaN or +-inf in any floating dataset raises.

    Returns
    -------
    Hdf5Content
        ``arrays`` (name -> array as stored), ``attrs`` (root attributes), ``path``.

    Raises
    ------
    MedsharedError
        Naming the file, for: wrong extension, missing file, not HDF5/corrupt/truncated, a
        requested name that is absent (the message lists the available ones), non-finite values
        when ``allow_nonfinite=False``.
    """
    p = check_input_file(path, HDF5_SUFFIXES, _KIND)
    with reraise_as_corrupt(p, _KIND, _LIB_ERRORS), h5py.File(p, "r") as fh:
        available: list[str] = []
        fh.visititems(
            lambda name, obj: available.append(name) if isinstance(obj, h5py.Dataset) else None
        )
        wanted = list(available) if names is None else [str(n).strip("/") for n in names]
        missing = [n for n in wanted if n not in available]
        if missing:
            raise MedsharedError(
                f"{_KIND} file {p}: no dataset(s) {missing}; available: {sorted(available)}"
            )
        arrays = {n: fh[n][()] for n in wanted}
        arrays = {n: (a if isinstance(a, np.ndarray) else np.asarray(a)) for n, a in arrays.items()}
        attrs = {k: _attr_to_python(v) for k, v in fh.attrs.items()}
    if not allow_nonfinite:
        for name, arr in arrays.items():
            check_finite(arr, Path(f"{p}:{name}"), _KIND)
    return Hdf5Content(arrays=arrays, attrs=attrs, path=p)


def write_hdf5(
    path: PathLike,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    *,
    compression: str | None = None,
) -> None:
    """Write named arrays and root attributes to an HDF5 file atomically.

    Parameters
    ----------
    path : str or PathLike
        Target ``.h5`` / ``.hdf5`` / ``.hdf`` file (replaced if it exists; the folder must exist).
    arrays : mapping of str to array-like
        Dataset name (``"group/name"`` creates groups) -> array; dtype and shape are kept.
    attrs : mapping of str to Any, optional
        Root attributes: numbers, strings, bools or numeric arrays.
    compression : {"gzip", "lzf"}, optional
        Dataset compression filter (default: none).

    Raises
    ------
    MedsharedError
        Wrong extension, an empty/non-string name, a value h5py cannot store (object arrays,
        dicts, None...). The target is then left untouched and no temporary file remains.
    """
    p = check_suffix(path, HDF5_SUFFIXES, _KIND)
    prepared: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name.strip("/"):
            raise MedsharedError(f"{_KIND} file {p}: dataset names must be non-empty strings")
        arr = np.asarray(value)
        if arr.dtype == object:
            raise MedsharedError(f"{_KIND} file {p}: dataset {name!r} has object dtype")
        prepared[name.strip("/")] = arr
    with reraise_write_errors(p, _KIND), atomic_path(p) as tmp:
        try:
            with h5py.File(tmp, "w") as fh:
                for name, arr in prepared.items():
                    fh.create_dataset(name, data=arr, compression=compression if arr.ndim else None)
                for key, value in (attrs or {}).items():
                    fh.attrs[key] = value
        except (TypeError, ValueError, KeyError) as exc:
            raise MedsharedError(
                f"{_KIND} file {p}: cannot write ({type(exc).__name__}: {exc})"
            ) from exc
