"""The one-page overview a clinician reads at a glance (``overview.png`` of ``perfdecon maps``).

Rows are slices (at most :data:`MAX_ROWS`, evenly spaced), columns CBF, CBV, MTT and Tmax with
the core (rCBF below threshold, red) and penumbra (Tmax above threshold, yellow) outlined with a
black halo (visible on every colour map); the title gives both volumes with their rules and the
mismatch ratio; the last panel shows the AIF (and VOF) curves, whose voxels are marked on their
slices. Tmax uses a fixed 0-:data:`TMAX_SCALE_S` s scale with the penumbra threshold marked on
its colour bar (comparable between cases); the other maps run from 0 to their 95th percentile in
the brain.

Arrays are ``(Z, Y, X)``. With the image's affine, axial slices are drawn in the radiological
convention (anterior up, the patient's right on the image's left, letters at the edges); other
orientations, or no affine, are drawn in voxel order (``Y`` down, ``X`` right) and say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MAX_ROWS = 12
"""Most slices drawn (evenly spaced when the series has more)."""
TMAX_SCALE_S = 12.0
"""Upper end of the fixed Tmax colour scale (s)."""

PANELS = (
    ("cbf", "CBF (mL/100g/min)", "viridis"),
    ("cbv", "CBV (mL/100g)", "viridis"),
    ("mtt", "MTT (s)", "magma"),
    ("tmax", "Tmax (s)", "magma"),
)


def mismatch(core_ml: float, penumbra_ml: float) -> float | None:
    """Mismatch ratio ``(core + penumbra) / core`` (None when there is no core)."""
    return (core_ml + penumbra_ml) / core_ml if core_ml > 0 else None


class _View:
    """In-plane display of ``(Y, X)`` slices: optional transpose, then row/column flips."""

    def __init__(self, affine: np.ndarray | None) -> None:
        self.transpose = self.flip_rows = self.flip_cols = False
        self.letters: tuple[str, str, str, str] | None = None  # top, bottom, left, right
        if affine is None:
            return
        from nibabel.orientations import io_orientation

        ornt = io_orientation(np.asarray(affine, float))  # per voxel axis: world axis, sign
        world = {int(ornt[0, 0]): (0, ornt[0, 1]), int(ornt[1, 0]): (1, ornt[1, 1])}
        if set(world) != {0, 1}:  # not an axial plane: keep voxel order
            return
        x_axis, x_sign = world[0]  # the voxel axis (0 = X, 1 = Y) along patient R-L
        _, y_sign = world[1]  # the one along A-P
        self.transpose = x_axis == 1  # columns must run along R-L
        self.flip_rows = y_sign > 0  # anterior (+y) at the top
        self.flip_cols = x_sign > 0  # the patient's right (+x) on the left
        self.letters = ("A", "P", "R", "L")

    def image(self, a: np.ndarray) -> np.ndarray:
        a = a.T if self.transpose else a
        a = a[::-1] if self.flip_rows else a
        return a[:, ::-1] if self.flip_cols else a

    def point(self, y: int, x: int, shape: tuple[int, int]) -> tuple[float, float]:
        """Display (column, row) of voxel ``(y, x)`` of a ``shape = (Y, X)`` slice."""
        r, c = (x, y) if self.transpose else (y, x)
        n_r, n_c = (shape[1], shape[0]) if self.transpose else shape
        return (n_c - 1 - c if self.flip_cols else c), (n_r - 1 - r if self.flip_rows else r)


def plot_overview(
    path: str | Path, res: Any, dt: float, vox_ml: float, affine: np.ndarray | None = None
) -> None:
    """Write the overview PNG of a :class:`perfdecon.pipeline.CaseResult` (atomic).

    Parameters
    ----------
    path:
        Output ``.png``.
    res:
        The case result (maps ``(Z, Y, X)``, core/penumbra/brain masks, AIF, optional VOF,
        config with the core/penumbra thresholds).
    dt:
        Frame interval (s) for the curve panel.
    vox_ml:
        Voxel volume (mL) for the lesion volumes.
    affine:
        ``4 x 4`` voxel ``(x, y, z)`` to RAS+ mm affine of the series; axial slices are then
        drawn in the radiological convention (None: voxel order).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patheffects as pe
    import matplotlib.pyplot as plt

    from medshared.io import atomic_path

    view = _View(affine)
    halo = [pe.withStroke(linewidth=2.6, foreground="black")]
    cfg = res.config
    n_z = res.cbf.shape[0]
    rows = np.unique(np.linspace(0, n_z - 1, min(n_z, MAX_ROWS)).round().astype(int))
    brain = res.brain_mask
    core_ml = float(res.core.sum() * vox_ml)
    pen_ml = float(res.penumbra.sum() * vox_ml)
    ratio = mismatch(core_ml, pen_ml)
    n_r, n_c = len(rows), len(PANELS)
    fig = plt.figure(dpi=80, figsize=(3.2 * n_c, 2.9 * n_r + 3.2))
    grid = fig.add_gridspec(n_r + 1, n_c, height_ratios=[1.0] * n_r + [1.1])
    limits = {}
    for name, _, _ in PANELS:
        v = getattr(res, name)[brain]
        hi = float(np.percentile(v, 95)) if v.size else 1.0
        limits[name] = (0.0, hi if hi > 0 else 1.0)
    limits["tmax"] = (0.0, max(TMAX_SCALE_S, cfg.penumbra_tmax + 2.0))
    marks = [("AIF", res.aif, "cyan", "c")]  # marker colour, curve colour
    if res.vof is not None:
        marks.append(("VOF", res.vof, "magenta", "m"))
    shape = res.cbf.shape[1:]
    for r, z in enumerate(rows):
        for c, (name, label, cmap) in enumerate(PANELS):
            ax = fig.add_subplot(grid[r, c])
            img = view.image(np.where(brain[z], getattr(res, name)[z], np.nan))
            im = ax.imshow(img, cmap=cmap, vmin=limits[name][0], vmax=limits[name][1],
                           interpolation="nearest")
            # penumbra first: it borders the core, whose outline is drawn on top of it
            for mask, color, lw in ((res.penumbra[z], "yellow", 1.2), (res.core[z], "red", 1.6)):
                if mask.any() and not mask.all():
                    cs = ax.contour(view.image(mask.astype(float)), levels=[0.5], colors=color,
                                    linewidths=lw)
                    cs.set(path_effects=halo)
            for tag, a, color, _ in marks:
                if a.location is not None and a.location[0] == z:
                    px, py = view.point(a.location[1], a.location[2], shape)
                    ax.plot(px, py, "+", color=color, ms=11, mew=2.0, path_effects=halo)
                    ax.annotate(tag, (px, py), color=color, fontsize=9, weight="bold",
                                xytext=(5, 5), textcoords="offset points", path_effects=halo)
            ax.set_xticks([])
            ax.set_yticks([])
            if view.letters is not None and c == 0:
                top, bottom, left, right = view.letters
                for txt, xy in ((top, (0.5, 0.97)), (bottom, (0.5, 0.03)), (left, (0.03, 0.5)),
                                (right, (0.97, 0.5))):
                    ax.text(*xy, txt, transform=ax.transAxes, ha="center", va="center",
                            fontsize=8, color="white", path_effects=halo)
            if r == 0:
                ax.set_title(label, fontsize=10)
            if c == 0:
                ax.set_ylabel(f"slice z={z}", fontsize=9)
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            if name == "tmax":
                bar.ax.axhline(cfg.penumbra_tmax, color="yellow", lw=2)
    ax = fig.add_subplot(grid[n_r, :])
    t = np.arange(len(res.aif.curve)) * dt
    for tag, a, _, line in marks:
        where = ""
        if a.location is not None:
            where = f" at voxel (x,y,z)=({a.location[2]}, {a.location[1]}, {a.location[0]})"
        peak = t[int(np.argmax(a.curve))]
        ax.plot(t, a.curve, "-", color=line, lw=2,
                label=f"{tag} ({a.source}){where}, peak at {peak:.1f} s")
    ax.set_xlabel("time from the first frame (s)", fontsize=9)
    ax.set_ylabel("enhancement (HU)" if cfg.modality == "ct" else "delta R2* (1/s)", fontsize=9)
    ax.legend(fontsize=9)
    ax.set_title("arterial / venous input curves (+ marks their voxel on its slice)", fontsize=10)
    text = (f"core {core_ml:.1f} mL (rCBF < {cfg.core_threshold:g}, red)   penumbra {pen_ml:.1f} "
            f"mL (Tmax > {cfg.penumbra_tmax:g} s, yellow)   mismatch ratio "
            + (f"{ratio:.2f}" if ratio is not None else "n/a (no core)"))
    notes = []
    if len(rows) < n_z:
        notes.append(f"{len(rows)} of {n_z} slices shown")
    notes.append("radiological view (patient's right on the left)" if view.letters else
                 "voxel order (no axial orientation known)")
    if res.aif.source == "model":
        notes.append("learned AIF: absolute CBF/CBV/MTT not calibrated")
    fig.suptitle(text + "\n" + "; ".join(notes), fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


__all__ = ["MAX_ROWS", "TMAX_SCALE_S", "mismatch", "plot_overview"]
