"""Progress bars: tqdm on stderr, shown on the main rank only."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from medshared.errors import require


def progress(
    iterable: Iterable[Any] | None = None,
    total: int | None = None,
    desc: str = "",
    enabled: bool = True,
    unit: str = "it",
) -> Any:
    """Wrap ``iterable`` in a tqdm bar (or return a manual bar when ``iterable`` is None).

    Parameters
    ----------
    iterable:
        What to iterate; ``None`` returns a bar to ``update()`` by hand.
    total:
        Number of items, when ``len(iterable)`` is not defined.
    desc:
        Label printed before the bar.
    enabled:
        ``False`` (e.g. ``--quiet`` or a non-main rank: pass ``runtime.is_main and not quiet``)
        gives a silent bar with the same interface.
    """
    tqdm = require("tqdm", "torch").tqdm
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        mininterval=0.5,
        unit=unit,
    )
