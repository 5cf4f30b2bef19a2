"""Training patches on the low-res grid with the paper's fluid-coverage rules.

For CFD series, each frame gives ``cfd_per_frame`` patches (10) of which ``cfd_covered`` (9) must
have at least ``cfd_coverage`` (20%) fluid and the rest are drawn anywhere; for MRI series,
``mri_per_frame`` (5) patches each with at least ``mri_coverage`` (5%) fluid. Coverage of every
possible corner is computed at once from a 3D summed-area table.
"""

from __future__ import annotations

import numpy as np

from flowsr.config import PatchConfig
from flowsr.errors import FlowsrError


def coverage_map(mask: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """Fluid fraction of the patch of ``size`` at every valid corner.

    Parameters
    ----------
    mask : np.ndarray
        ``(X, Y, Z)`` fluid mask.
    size : tuple of 3 int
        Patch size ``(px, py, pz)`` in voxels.

    Returns
    -------
    np.ndarray
        ``(X - px + 1, Y - py + 1, Z - pz + 1)`` fractions in [0, 1].
    """
    m = np.asarray(mask, dtype=np.float64)
    if any(n < p for n, p in zip(m.shape, size, strict=True)):
        raise FlowsrError(f"patch size {size} is larger than the low-res grid {m.shape}")
    s = np.pad(m, ((1, 0), (1, 0), (1, 0))).cumsum(0).cumsum(1).cumsum(2)
    px, py, pz = size
    tot = (
        s[px:, py:, pz:] - s[:-px, py:, pz:] - s[px:, :-py, pz:] - s[px:, py:, :-pz]
        + s[:-px, :-py, pz:] + s[:-px, py:, :-pz] + s[px:, :-py, :-pz] - s[:-px, :-py, :-pz]
    )
    return tot / float(px * py * pz)


def _draw(cov: np.ndarray, thr: float, k: int, rng: np.random.Generator, what: str) -> np.ndarray:
    ok = np.flatnonzero(cov.ravel() >= thr)
    if k and ok.size == 0:
        raise FlowsrError(
            f"{what}: no patch reaches {thr:.0%} fluid coverage (best {cov.max():.1%}); use a "
            "smaller patch or a lower coverage"
        )
    pick = rng.choice(ok, size=k, replace=ok.size < k) if k else np.empty(0, dtype=np.int64)
    return np.stack(np.unravel_index(pick, cov.shape), axis=1)


def sample_corners(
    mask: np.ndarray,
    n_frames: int,
    kind: str,
    config: PatchConfig | None = None,
    rng: np.random.Generator | None = None,
    what: str = "series",
) -> np.ndarray:
    """Draw patch corners for every frame following the coverage rules.

    Parameters
    ----------
    mask : np.ndarray
        ``(T|1, X, Y, Z)`` low-res fluid mask.
    n_frames : int
        Frames T.
    kind : {"cfd", "mri"}
        Which rule applies.

    Returns
    -------
    np.ndarray
        ``(N, 4)`` int: frame, x0, y0, z0 (low-res voxels).
    """
    cfg = config or PatchConfig()
    rng = rng or np.random.default_rng(0)
    size = (cfg.size_x, cfg.size_y, cfg.size_z)
    m = np.asarray(mask).reshape(-1, *np.asarray(mask).shape[-3:])
    rows = []
    cov_static = coverage_map(m[0], size) if m.shape[0] == 1 else None
    for t in range(n_frames):  # per frame: a handful of draws from one coverage map
        cov = cov_static if cov_static is not None else coverage_map(m[t], size)
        if kind == "cfd":
            if cfg.cfd_covered > cfg.cfd_per_frame:
                raise FlowsrError("patches: cfd_covered must not exceed cfd_per_frame")
            good = _draw(cov, cfg.cfd_coverage, cfg.cfd_covered, rng, what)
            free = _draw(cov, -1.0, cfg.cfd_per_frame - cfg.cfd_covered, rng, what)
            corners = np.concatenate([good, free])
        elif kind == "mri":
            corners = _draw(cov, cfg.mri_coverage, cfg.mri_per_frame, rng, what)
        else:
            raise FlowsrError(f"patches: kind must be 'cfd' or 'mri', got {kind!r}")
        rows.append(np.concatenate([np.full((len(corners), 1), t), corners], axis=1))
    return np.concatenate(rows).astype(np.int64)
