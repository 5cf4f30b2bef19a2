"""The one exception type of streamvq."""

from __future__ import annotations

from medshared.errors import MedsharedError


class StreamvqError(MedsharedError):
    """Bad input to streamvq (the message names the file or option and the fix)."""
