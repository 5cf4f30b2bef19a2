"""The one-page overview a clinician reads at a glance (``overview.png`` of ``perfdecon maps``).

Rows are slices (at most :data:`MAX_ROWS`, evenly spaced), columns CBF, CBV, MTT and Tmax with
the core (rCBF below threshold, red) and penumbra (Tmax above threshold, yellow) outlined; the
title gives both volumes and the mismatch ratio; the last panel shows the AIF (and VOF) curves,
whose voxels are marked on their slices. Arrays are ``(Z, Y, X)``; each slice is drawn with
``Y`` down and ``X`` to the right (voxel order, no reorientation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MAX_ROWS = 12
"""Most slices drawn (evenly spaced when the series has more)."""

PANELS = (
    ("cbf", "CBF (mL/100g/min)", "viridis"),
    ("cbv", "CBV (mL/100g)", "viridis"),
    ("mtt", "MTT (s)", "magma"),
    ("tmax", "Tmax (s)", "magma"),
)


def mismatch(core_ml: float, penumbra_ml: float) -> float | None:
    """Mismatch ratio ``(core + penumbra) / core`` (None when there is no core)."""
    return (core_ml + penumbra_ml) / core_ml if core_ml > 0 else None


def plot_overview(path: str | Path, res: Any, dt: float, vox_ml: float) -> None:
    """Write the overview PNG of a :class:`perfdecon.pipeline.CaseResult` (atomic).

    Parameters
    ----------
    path:
        Output ``.png``.
    res:
        The case result (maps ``(Z, Y, X)``, core/penumbra/brain masks, AIF, optional VOF).
    dt:
        Frame interval (s) for the curve panel.
    vox_ml:
        Voxel volume (mL) for the lesion volumes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medshared.io import atomic_path

    n_z = res.cbf.shape[0]
    rows = np.unique(np.linspace(0, n_z - 1, min(n_z, MAX_ROWS)).round().astype(int))
    brain = res.brain_mask
    core_ml = float(res.core.sum() * vox_ml)
    pen_ml = float(res.penumbra.sum() * vox_ml)
    ratio = mismatch(core_ml, pen_ml)
    n_r, n_c = len(rows), len(PANELS)
    fig = plt.figure(dpi=80, figsize=(3.2 * n_c, 2.9 * n_r + 3.0))
    grid = fig.add_gridspec(n_r + 1, n_c, height_ratios=[1.0] * n_r + [1.1])
    limits = {}
    for name, _, _ in PANELS:
        v = getattr(res, name)[brain]
        hi = float(np.percentile(v, 95)) if v.size else 1.0
        limits[name] = (0.0, hi if hi > 0 else 1.0)
    marks = [("AIF", res.aif, "c")] + ([("VOF", res.vof, "m")] if res.vof is not None else [])
    for r, z in enumerate(rows):
        for c, (name, label, cmap) in enumerate(PANELS):
            ax = fig.add_subplot(grid[r, c])
            img = np.where(brain[z], getattr(res, name)[z], np.nan)
            im = ax.imshow(img, cmap=cmap, vmin=limits[name][0], vmax=limits[name][1],
                           interpolation="nearest")
            for mask, color in ((res.core[z], "red"), (res.penumbra[z], "yellow")):
                if mask.any() and not mask.all():
                    ax.contour(mask.astype(float), levels=[0.5], colors=color, linewidths=0.8)
            for tag, a, color in marks:
                if a.location is not None and a.location[0] == z:
                    ax.plot(a.location[2], a.location[1], "+", color=color, ms=9, mew=1.5)
                    ax.annotate(tag, (a.location[2], a.location[1]), color=color, fontsize=7,
                                xytext=(4, 4), textcoords="offset points")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"slice z={z}", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    ax = fig.add_subplot(grid[n_r, :])
    t = np.arange(len(res.aif.curve)) * dt
    for tag, a, color in marks:
        where = f" at (z,y,x)={a.location}" if a.location is not None else ""
        ax.plot(t, a.curve, "-", color=color, label=f"{tag} ({a.source}){where}")
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("concentration", fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("arterial / venous curves (+ marks their voxel on its slice)", fontsize=9)
    text = (f"core {core_ml:.1f} mL (red outline)   penumbra {pen_ml:.1f} mL (yellow)   "
            "mismatch ratio " + (f"{ratio:.2f}" if ratio is not None else "n/a (no core)"))
    if len(rows) < n_z:
        text += f"\n{len(rows)} of {n_z} slices shown"
    fig.suptitle(text, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


__all__ = ["MAX_ROWS", "mismatch", "plot_overview"]
