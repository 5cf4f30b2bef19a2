"""Private helpers for the readers: library errors and log lines turned into our own messages."""

from __future__ import annotations

import errno
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medshared.errors import (
    AllocationError,
    FilePermissionError,
    MedsharedError,
    MissingFileError,
)


@contextmanager
def read_errors(path: Path, kind: str, errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Turn what a library raises while reading ``path`` into one error naming the file.

    A permission problem stays a permission problem (:class:`FilePermissionError`), a vanished
    file a :class:`MissingFileError`, a folder "is a folder", a ``MemoryError`` an
    :class:`AllocationError`; only parse errors among ``errors`` become "corrupt or truncated".
    """
    try:
        yield
    except MedsharedError:
        raise
    except PermissionError as exc:
        raise FilePermissionError(f"{kind} file {path}: permission denied") from exc
    except FileNotFoundError as exc:
        raise MissingFileError(f"{kind} file {path}: no such file") from exc
    except IsADirectoryError as exc:
        raise MedsharedError(f"{kind} file {path}: is a folder, not a file") from exc
    except MemoryError as exc:
        raise AllocationError(f"{kind} file {path}: not enough memory to read it") from exc
    except errors as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
            raise FilePermissionError(f"{kind} file {path}: permission denied") from exc
        raise MedsharedError(
            f"{kind} file {path}: cannot read, file is corrupt or truncated "
            f"({type(exc).__name__}: {exc})"
        ) from exc


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def captured_library_messages(*loggers: str) -> Iterator[list[str]]:
    """Collect (instead of printing) the log lines and Python warnings of libraries.

    Yields a list that receives the messages; the caller keeps them in the record's ``meta`` (or
    turns them into one error of its own). Nothing is printed raw.
    """
    handler = _Collect()
    saved = []
    for name in loggers:
        log = logging.getLogger(name)
        saved.append((log, log.propagate, log.level))
        log.addHandler(handler)
        log.propagate = False
        log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield handler.lines
        handler.lines.extend(str(w.message) for w in caught)
    finally:
        for log, propagate, level in saved:
            log.removeHandler(handler)
            log.propagate = propagate
            log.setLevel(level)
