"""HDF5 files (``.h5``, ``.hdf5``) of named arrays plus file-level attributes, via h5py.

Two ways to read:

- :func:`open_hdf5` opens the file lazily: ``with open_hdf5(p) as f: frame = f["u"][t]`` reads
  only frame ``t`` of dataset ``u`` (any numpy-style index: ints, slices, ``...``, index lists).
  Every read is checked against the available memory before it is allocated, and library errors
  become one message naming ``file:dataset``.
- :func:`read_hdf5` reads whole datasets into memory (small files); the declared sizes of all
  requested datasets are checked against the available memory first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from medshared.errors import MedsharedError
from medshared.io._checks import (
    PathLike,
    check_finite,
    check_input_file,
    check_suffix,
    reraise_write_errors,
)
from medshared.io._limits import check_allocation, nbytes_of
from medshared.io._reading import read_errors
from medshared.io.atomic import atomic_path

__all__ = ["Hdf5Content", "Hdf5Dataset", "Hdf5File", "open_hdf5", "read_hdf5", "write_hdf5"]

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


def _selection_shape(shape: tuple[int, ...], index: Any) -> tuple[int, ...]:
    """Shape of ``array[index]`` for an array of ``shape``, computed without allocating it."""
    probe = np.lib.stride_tricks.as_strided(
        np.zeros(1, dtype=np.uint8), shape=shape, strides=(0,) * len(shape)
    )
    return tuple(probe[index].shape)


class Hdf5Dataset:
    """A dataset of an open file, read lazily: index it like a numpy array.

    Attributes
    ----------
    name : str
        Path inside the file (``"group/name"``).
    shape, dtype, ndim
        As stored.
    attrs : dict
        The dataset's attributes (numpy scalars as Python scalars, bytes as ``str``).
    """

    def __init__(self, file: Hdf5File, name: str, dataset: h5py.Dataset) -> None:
        self._file = file
        self._ds = dataset
        self.name = name
        self.shape: tuple[int, ...] = tuple(int(n) for n in dataset.shape or ())
        self.dtype = np.dtype(dataset.dtype)
        self.ndim = len(self.shape)
        self.attrs = {k: _attr_to_python(v) for k, v in dataset.attrs.items()}

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("a scalar dataset has no length")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<Hdf5Dataset {self._file.path}:{self.name} shape={self.shape} {self.dtype}>"

    def __getitem__(self, index: Any) -> np.ndarray:
        """Read ``dataset[index]`` from disk (only the selected elements)."""
        where = f"{self._file.path}:{self.name}"
        if self._file.closed:
            raise MedsharedError(f"{_KIND} file {where}: the file is closed; read inside `with`")
        try:
            out_shape = _selection_shape(self.shape, index)
        except (IndexError, TypeError, ValueError) as exc:
            raise MedsharedError(
                f"{_KIND} file {where}: bad index {index!r} for shape {self.shape} ({exc})"
            ) from exc
        check_allocation(nbytes_of(out_shape, self.dtype.itemsize), where, "selection")
        with read_errors(Path(where), _KIND, _LIB_ERRORS):
            out = self._ds[index]
        return out if isinstance(out, np.ndarray) else np.asarray(out)

    def read(self) -> np.ndarray:
        """The whole dataset (checked against the available memory first)."""
        return self[()] if not self.shape else self[...]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.read()
        return out if dtype is None else out.astype(dtype, copy=False)


class Hdf5File:
    """An HDF5 file opened for lazy reading; use as a context manager (see :func:`open_hdf5`).

    Attributes
    ----------
    path : Path
    names : list of str
        Every dataset's path (``"group/name"``), in the file's order.
    attrs : dict
        Root attributes (numpy scalars as Python scalars, bytes as ``str``).
    """

    def __init__(self, path: Path, handle: h5py.File) -> None:
        self.path = path
        self._fh = handle
        names: list[str] = []
        handle.visititems(
            lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
        )
        self.names = names
        self.attrs = {k: _attr_to_python(v) for k, v in handle.attrs.items()}

    @property
    def closed(self) -> bool:
        return not bool(self._fh.id.valid)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip("/") in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def keys(self) -> list[str]:
        return list(self.names)

    def __getitem__(self, name: str) -> Hdf5Dataset:
        key = str(name).strip("/")
        if key not in self.names:
            raise MedsharedError(
                f"{_KIND} file {self.path}: no dataset {key!r}; available: {sorted(self.names)}"
            )
        return Hdf5Dataset(self, key, self._fh[key])

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Hdf5File:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_hdf5(path: PathLike) -> Hdf5File:
    """Open an HDF5 file for lazy, sliceable reading.

    Parameters
    ----------
    path : str or PathLike
        ``.h5`` / ``.hdf5`` / ``.hdf`` file.

    Returns
    -------
    Hdf5File
        A context manager: ``with open_hdf5(p) as f: f["u"][t]`` reads frame ``t`` only;
        ``f.names`` lists the datasets, ``f.attrs`` the root attributes.

    Raises
    ------
    MedsharedError
        Naming the file: wrong extension, missing file (a ``MissingFileError``), not HDF5 /
        corrupt / truncated, permission denied (a ``FilePermissionError``).
    """
    p = check_input_file(path, HDF5_SUFFIXES, _KIND)
    with read_errors(p, _KIND, _LIB_ERRORS):
        handle = h5py.File(p, "r")
        try:
            return Hdf5File(p, handle)
        except BaseException:
            handle.close()
            raise


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
        when ``allow_nonfinite=False``. :class:`~medshared.errors.AllocationError` when the
        declared datasets would not fit in the available memory (use :func:`open_hdf5` and
        read slices instead).
    """
    with open_hdf5(path) as f:
        p = f.path
        wanted = list(f.names) if names is None else [str(n).strip("/") for n in names]
        missing = [n for n in wanted if n not in f.names]
        if missing:
            raise MedsharedError(
                f"{_KIND} file {p}: no dataset(s) {missing}; available: {sorted(f.names)}"
            )
        datasets = [f[n] for n in wanted]
        total = sum(nbytes_of(ds.shape, ds.dtype.itemsize) for ds in datasets)
        check_allocation(
            total, p, f"{len(datasets)} dataset(s)", hint="read slices with open_hdf5 instead"
        )
        arrays = {ds.name: ds.read() for ds in datasets}
        attrs = dict(f.attrs)
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
