"""Atomic file writing: write to a temporary file in the target folder, then rename.

The temporary file is ``.<name>.<random>.part`` in the target's folder, followed by the target's
*format* suffix when it has a known one (``.nii.gz``, ``.npy``...; see :data:`FORMAT_SUFFIXES`),
so libraries that choose a format from the extension (nibabel, ``np.save``) write the same bytes.
``dect_4.95.nii.gz`` is written as ``.dect_4.95.nii.gz.<random>.part.nii.gz``; ``notes.v2`` as
``.notes.v2.<random>.part``. The target is checked first with
:func:`medshared.io.outputs.check_output_path`: a symlink, folder, FIFO, socket or device at the
target is refused, never replaced. On any exception (Ctrl-C and the CLI runner's SIGTERM
included) the temporary file is removed and the target is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from medshared.io.outputs import check_output_path

__all__ = [
    "FORMAT_SUFFIXES",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "format_suffix",
]

#: Format suffixes kept at the end of temporary names (longest match wins, case-insensitive).
FORMAT_SUFFIXES = (
    ".nii.gz",
    ".nii",
    ".npy",
    ".npz",
    ".wdr",
    ".h5",
    ".hdf5",
    ".trk",
    ".tck",
    ".trx",
    ".png",
    ".json",
    ".jsonl",
    ".safetensors",
    ".pt",
    ".csv",
    ".txt",
    ".dcm",
)


def format_suffix(name: str) -> str:
    """The known format suffix that ``name`` ends with (as spelled in ``name``), else ``""``.

    >>> format_suffix("dect_4.95.nii.gz"), format_suffix("a.NPY"), format_suffix("x.95")
    ('.nii.gz', '.NPY', '')
    """
    lower = name.lower()
    best = ""
    for suf in FORMAT_SUFFIXES:
        if lower.endswith(suf) and len(suf) > len(best) and len(name) > len(suf):
            best = suf
    return name[len(name) - len(best) :] if best else ""


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str],
    suffix: str | None = None,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    what: str = "output",
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Parameters
    ----------
    path : str or PathLike
        The final file. Checked before anything is created: a symlink, folder, FIFO, socket or
        device there, a missing or read-only parent folder, or a path that is one of ``inputs``
        raises :class:`~medshared.errors.MedsharedError`.
    suffix : str, optional
        Suffix of the temporary name after ``.part``; default: the target's format suffix
        (:func:`format_suffix`).
    inputs : iterable of str or PathLike
        Files the command reads; ``path`` must not be one of them.
    what : str
        How the user named this output (an option such as ``"--json"``), for messages.

    Notes
    -----
    The result gets the mode a plain ``open()`` would have given it: the replaced file's mode,
    else ``0666`` minus the umask. If the body raises (``KeyboardInterrupt`` included), the
    temporary file is removed and a previous version of ``path`` stays intact.

    Example
    -------
    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> with atomic_path(out) as tmp:
    ...     np.save(tmp, np.zeros(3))
    >>> out.exists()
    True
    """
    target = check_output_path(path, inputs, what=what)
    folder = target.parent if str(target.parent) else Path(".")
    if suffix is None:
        suffix = format_suffix(target.name)
    tmp: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=f".part{suffix}", dir=folder
        )
        tmp = Path(tmp_name)
        os.close(fd)
        try:
            yield tmp
        except OSError as exc:
            _rename_in_error(exc, tmp, target)
            raise
        # mkstemp creates 0600 files; give the result the mode a plain open() would have
        # (the existing file's mode, else 0666 minus the umask).
        os.chmod(tmp, _final_mode(target))
        # Re-check just before the rename: a FIFO or link may have appeared meanwhile.
        check_output_path(target, inputs, what=what)
        os.replace(tmp, target)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _rename_in_error(exc: OSError, tmp: Path, target: Path) -> None:
    """Make an ``OSError`` about the temporary file name the user's target instead."""

    def is_tmp(name: object) -> bool:
        try:
            return name is not None and Path(os.fsdecode(name)).resolve() == tmp.resolve()
        except (TypeError, ValueError, OSError):
            return False

    if is_tmp(exc.filename):
        exc.filename = os.fspath(target)
    if is_tmp(exc.filename2):
        exc.filename2 = os.fspath(target)


def _final_mode(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write_bytes(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    what: str = "output",
) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder + rename)."""
    with atomic_path(path, inputs=inputs, what=what) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    what: str = "output",
) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), inputs=inputs, what=what)
