"""The package's single exception type."""

from __future__ import annotations


class WdrError(ValueError):
    """Bad input, corrupted/truncated ``.wdr`` data or an impossible request.

    The message names the file or argument at fault and what to do about it.
    """
