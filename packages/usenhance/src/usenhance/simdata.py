"""Write simulated pairs as a USEnhance-2023-style dataset folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medshared.io import write_png
from medshared.io.outputs import output_set
from usenhance.errors import UsenhanceError
from usenhance.phantom import ORGANS, SimConfig, simulate_pair

__all__ = ["write_dataset"]


def write_dataset(root: str | Path, n_per_organ: int, organs: Sequence[str] = ORGANS,
                  config: SimConfig | None = None, seed: int = 0, bit_depth: int = 8,
                  quiet: bool = True) -> list[Path]:
    """Simulate ``n_per_organ`` pairs per organ into ``root/<organ>/{low,high}_quality/NNNN.png``.

    Pair ``i`` of organ ``k`` uses ``numpy.random.default_rng((seed, k, i))``, so datasets of
    different sizes share their first pairs. The folder appears complete or not at all.

    Returns
    -------
    list of Path
        The files written (final locations).
    """
    if n_per_organ < 1:
        raise UsenhanceError(f"--n must be >= 1, got {n_per_organ}")
    if bit_depth not in (8, 16):
        raise UsenhanceError(f"--bit-depth must be 8 or 16, got {bit_depth}")
    bad = [o for o in organs if o not in ORGANS]
    if bad:
        raise UsenhanceError(f"--organs: unknown organ(s) {', '.join(bad)}; choose from {', '.join(ORGANS)}")
    config = config or SimConfig()
    peak = 2**bit_depth - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    q = lambda a: np.round(np.clip(a, 0, 1) * peak).astype(dtype)  # noqa: E731
    from medshared.training import progress

    written: list[Path] = []
    rootp = Path(root)
    with output_set(rootp, None, what="dataset folder") as stage:
        jobs = [(o, i) for o in organs for i in range(n_per_organ)]
        for organ, i in progress(jobs, desc="simulate", enabled=not quiet):
            pair = simulate_pair(organ, config, np.random.default_rng((seed, ORGANS.index(organ), i)))
            for sub, img in (("low_quality", pair.low), ("high_quality", pair.high)):
                d = stage / organ / sub
                d.mkdir(parents=True, exist_ok=True)
                write_png(d / f"{i:04d}.png", q(img))
                written.append(rootp / organ / sub / f"{i:04d}.png")
    return written
