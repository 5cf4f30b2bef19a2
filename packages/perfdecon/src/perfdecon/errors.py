"""Exception type of perfdecon."""

from __future__ import annotations

from medshared.errors import MedsharedError


class PerfdeconError(MedsharedError):
    """Bad input to perfdecon (the message names the file/argument at fault and the fix).

    A :class:`medshared.errors.MedsharedError` (so a ``ValueError``); the shared CLI runner
    prints it as one line and exits 2. :class:`medshared.errors.MissingExtraError` is never
    re-wrapped into it.
    """


__all__ = ["PerfdeconError"]
