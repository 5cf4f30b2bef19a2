"""Lazy import of torch for the training parts (names the extra when it is missing)."""

from __future__ import annotations

from types import ModuleType

from medshared.errors import require


def torch() -> ModuleType:
    """Return the ``torch`` module, or raise :class:`MissingExtraError` naming ``[torch]``."""
    return require("torch", "torch")
