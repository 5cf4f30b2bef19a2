"""The one exception type of flowsr (a :class:`medshared.errors.MedsharedError`)."""

from __future__ import annotations

from medshared.errors import MedsharedError


class FlowsrError(MedsharedError):
    """Bad input to flowsr; the message names the file or option and what is wrong."""
