"""Exception types of medshared.

Every error a user can trigger with bad input is a :class:`MedsharedError` (a ``ValueError``) whose
message names the file or argument at fault and what to do about it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MedsharedError(ValueError):
    """Bad input to a medshared metric or reader/writer (message names the file/argument)."""


class MissingExtraError(MedsharedError, ImportError):
    """An optional dependency is missing; the message names the pip extra that provides it."""


class MissingFileError(MedsharedError, FileNotFoundError):
    """A file or folder the user named does not exist (also a ``FileNotFoundError``/``OSError``)."""


class FilePermissionError(MedsharedError, PermissionError):
    """A file or folder exists but may not be read/written (also a ``PermissionError``)."""


class AllocationError(MedsharedError, MemoryError):
    """A file declares more data than the available memory (or a set limit) can hold.

    Raised *before* anything is allocated, from the sizes a header claims.
    """


def require(module: str, extra: str, package: str = "medshared") -> ModuleType:
    """Import an optional dependency lazily.

    Parameters
    ----------
    module:
        Importable module name, e.g. ``"pydicom"``.
    extra:
        Name of the extra that installs it, e.g. ``"dicom"``.
    package:
        Distribution that declares the extra (default ``medshared``).

    Raises
    ------
    MissingExtraError
        If the module cannot be imported; the message says ``pip install "package[extra]"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised via monkeypatch in tests
        raise MissingExtraError(
            f"{module!r} is required for this feature but is not installed; "
            f'install it with: pip install "{package}[{extra}]"'
        ) from exc
