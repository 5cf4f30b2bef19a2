"""Private helpers shared by the readers/writers: path, extension, ndim and finiteness checks.

Every check raises :class:`~medshared.errors.MedsharedError` with a message that starts with the
file kind and path, so a CLI can print it as is.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from medshared.errors import FilePermissionError, MedsharedError, MissingFileError

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


def check_input_path(path: PathLike, kind: str, *, folder: bool = False) -> Path:
    """Check that ``path`` names an existing, readable input without opening it.

    Uses ``os.stat`` only, so a FIFO, socket or device is refused before anything could block
    on it.

    Parameters
    ----------
    path : str or PathLike
        The input the user named.
    kind : str
        What the file is, for messages (``"NIfTI"``, ``".npy"``...).
    folder : bool
        True if the input must be a folder (a DICOM series); else it must be a regular file.

    Returns
    -------
    Path
        ``Path(path)``.

    Raises
    ------
    MissingFileError
        ``path`` does not exist (also a ``FileNotFoundError``).
    FilePermissionError
        ``path`` exists but may not be read (also a ``PermissionError``).
    MedsharedError
        ``path`` is a folder where a file is expected (or the reverse), a FIFO, socket or device.
    """
    p = Path(path)
    label = f"{kind} file {p}" if not folder else f"{kind} folder {p}"
    try:
        st = os.stat(p)
    except FileNotFoundError:
        broken = os.path.islink(p)
        raise MissingFileError(
            f"{label}: {'broken symlink' if broken else 'no such file or folder'}"
        ) from None
    except NotADirectoryError:
        raise MissingFileError(f"{label}: a parent of this path is not a folder") from None
    except PermissionError:
        raise FilePermissionError(f"{label}: permission denied") from None
    except OSError as exc:
        raise MedsharedError(f"{label}: cannot access ({exc.strerror})") from None
    mode = st.st_mode
    if folder:
        if not stat.S_ISDIR(mode):
            raise MedsharedError(f"{label}: {_kind_of(mode)}, not a folder")
        if not os.access(p, os.R_OK | os.X_OK):
            raise FilePermissionError(f"{label}: permission denied")
        return p
    if stat.S_ISDIR(mode):
        raise MedsharedError(f"{kind} file {p}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise MedsharedError(
            f"{kind} file {p}: {_kind_of(mode)}, not a regular file; refusing to read it"
        )
    if not os.access(p, os.R_OK):
        raise FilePermissionError(f"{kind} file {p}: permission denied")
    return p


def _kind_of(mode: int) -> str:
    for test, text in (
        (stat.S_ISDIR, "is a folder"),
        (stat.S_ISFIFO, "is a FIFO (named pipe)"),
        (stat.S_ISSOCK, "is a socket"),
        (stat.S_ISCHR, "is a character device"),
        (stat.S_ISBLK, "is a block device"),
        (stat.S_ISREG, "is a file"),
    ):
        if test(mode):
            return text
    return "is a special file"


def check_input_file(path: PathLike, suffixes: tuple[str, ...], kind: str) -> Path:
    """Check extension, existence and type of a file to read (never opens it); return a Path.

    A FIFO, socket or device is refused before anything could block on it, a folder is "is a
    folder, not a file", a missing file raises :class:`~medshared.errors.MissingFileError`
    (also a ``FileNotFoundError``). See :func:`check_input_path`.
    """
    p = check_suffix(path, suffixes, kind)
    return check_input_path(p, kind)


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
        # strerror, not str(exc): the latter names the temporary file of the atomic writer.
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise MedsharedError(f"{kind} file {path}: cannot write ({reason})") from exc
