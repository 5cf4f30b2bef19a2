"""Exception type of perfdecon."""

from __future__ import annotations


class PerfdeconError(ValueError):
    """Bad input to perfdecon (the message names the file/argument at fault and the fix)."""


__all__ = ["PerfdeconError"]
