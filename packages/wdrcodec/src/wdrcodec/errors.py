"""The package's single exception type."""

from __future__ import annotations

from medshared.errors import MedsharedError


class WdrError(MedsharedError):
    """Bad input, corrupted/truncated ``.wdr`` data or an impossible request.

    A subclass of :class:`medshared.errors.MedsharedError` (itself a ``ValueError``), so the shared
    CLI runner prints it as one line with exit status 2. The message names the file or option at
    fault and what to do about it. :class:`medshared.errors.MissingExtraError` passes through the
    package unchanged (it is never re-wrapped as a ``WdrError``).
    """
