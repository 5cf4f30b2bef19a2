"""Progress bars of perfdecon's commands (tqdm on stderr; off with ``--quiet`` or no tty)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

STAGES = ("read", "concentration", "aif", "maps", "write")
"""Stages of one ``maps`` case, in order (see :func:`perfdecon.maps_job.run_maps`)."""


@contextlib.contextmanager
def stage_bar(enabled: bool = True, desc: str = "maps") -> Iterator[Callable[[str], None]]:
    """Yield an ``on_stage(name)`` callback that advances a bar over :data:`STAGES`."""
    if not enabled:
        yield lambda name: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=len(STAGES), desc=desc, unit="stage", leave=False)
    seen: list[str] = []

    def on_stage(name: str) -> None:
        if seen:
            bar.update(1)
        seen.append(name)
        bar.set_postfix_str(name)

    try:
        yield on_stage
        bar.update(len(STAGES) - bar.n)
    finally:
        bar.close()


__all__ = ["STAGES", "stage_bar"]
