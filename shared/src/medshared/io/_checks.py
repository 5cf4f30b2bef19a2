"""Private helpers shared by the readers/writers: path, extension, ndim and finiteness checks.

Every check raises :class:`~medshared.errors.MedsharedError` with a message that starts with the
file kind and path, so a CLI can print it as is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from medshared.errors import MedsharedError

PathLike = str | os.PathLike[str]
NdimSpec = int | tuple[int, ...] | None


def has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    """True if ``path``'s name ends with one of ``suffixes`` (case-insensitive)."""
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def check_suffix(path: PathLike, suffixes: tuple[str, ...], kind: str) -> Path:
    """Return ``Path(path)`` or raise if its extension is not one of ``suffixes``."""
    p = Path(path)
    if not has_suffix(p, suffixes):
        raise MedsharedError(f"{kind} file {p}: wrong extension (expected {' or '.join(suffixes)})")
    return p


def check_input_file(path: PathLike, suffixes: tuple[str, ...], kind: str) -> Path:
    """Check extension and existence of a file to read; return it as a ``Path``."""
    p = check_suffix(path, suffixes, kind)
    if not p.exists():
        raise MedsharedError(f"{kind} file {p}: no such file")
    if not p.is_file():
        raise MedsharedError(f"{kind} file {p}: not a regular file")
    return p


def check_ndim(shape: tuple[int, ...], ndim: NdimSpec, path: Path, kind: str) -> None:
    """Raise unless ``len(shape)`` is ``ndim`` (an int) or one of ``ndim`` (a tuple)."""
    if ndim is None:
        return
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if len(shape) not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise MedsharedError(
            f"{kind} file {path}: expected ndim={want}, got ndim={len(shape)} (shape {shape})"
        )


def check_finite(array: np.ndarray, path: Path, kind: str) -> None:
    """Raise if a floating/complex ``array`` holds NaN or +-inf (integer arrays always pass)."""
    if array.dtype.kind not in "fc":
        return
    finite = np.isfinite(array)
    if not finite.all():
        n_bad = int(finite.size - np.count_nonzero(finite))
        raise MedsharedError(
            f"{kind} file {path}: {n_bad} non-finite value(s) (NaN/inf) in the data; "
            "clean the file or pass allow_nonfinite=True"
        )


@contextmanager
def reraise_as_corrupt(
    path: Path, kind: str, errors: tuple[type[BaseException], ...]
) -> Iterator[None]:
    """Turn library exceptions raised while parsing ``path`` into one :class:`MedsharedError`."""
    try:
        yield
    except MedsharedError:
        raise
    except errors as exc:
        raise MedsharedError(
            f"{kind} file {path}: cannot read, file is corrupt or truncated "
            f"({type(exc).__name__}: {exc})"
        ) from exc


@contextmanager
def reraise_write_errors(path: Path, kind: str) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` (disk full, permission...) into one error."""
    try:
        yield
    except MedsharedError:
        raise
    except OSError as exc:
        raise MedsharedError(f"{kind} file {path}: cannot write ({exc})") from exc
