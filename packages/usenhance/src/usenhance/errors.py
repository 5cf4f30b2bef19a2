"""The package's error type (a :class:`medshared.errors.MedsharedError`)."""

from __future__ import annotations

from medshared.errors import MedsharedError, MissingExtraError

__all__ = ["MissingExtraError", "UsenhanceError"]


class UsenhanceError(MedsharedError):
    """Bad input to usenhance: the message names the file or option and what to do."""
