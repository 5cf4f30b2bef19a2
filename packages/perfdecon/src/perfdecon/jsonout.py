"""Strict JSON for perfdecon's reports: no bare ``NaN``/``Infinity`` (they are not JSON).

Non-finite floats become ``null``; numpy scalars and arrays become Python numbers and lists.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None and numpy types made plain."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON text (indent 2, trailing newline) of :func:`json_safe` ``(obj)``."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    """Write :func:`dumps` ``(obj)`` to ``path`` atomically."""
    from medshared.io import atomic_write_text

    atomic_write_text(Path(path), dumps(obj))


__all__ = ["dumps", "json_safe", "write_json"]
