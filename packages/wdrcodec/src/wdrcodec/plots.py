"""Pictures for ``eval`` and ``bench``: rate-distortion curves and a slice strip (PNG).

matplotlib is imported only here, with the Agg backend; without it a
:class:`~medshared.errors.MissingExtraError` says how to install it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# one curve: [(bpv, psnr dB, ssim)]; ssim may be NaN where it was not measured
Curve = Sequence[tuple[float, float, float]]
_MARKERS = "os^Dvx*P"
_DASHES = ["-", "--", "-.", ":"]


def _pyplot():
    from medshared.errors import MissingExtraError

    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError(
            "plots need matplotlib; install it with: pip install \"wdrcodec[plots]\""
        ) from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def rd_figure(curves: Mapping[str, Curve], path: Path, title: str = "") -> Path:
    """PSNR and SSIM against bits per voxel, one line per codec/mode, written to ``path``."""
    from medshared.io import atomic_path

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for i, (name, pts) in enumerate(curves.items()):
        pts = sorted((float(b), float(p), float(s)) for b, p, s in pts)
        if not pts:
            continue
        b, p, s = (np.array(v) for v in zip(*pts))
        # a marker and a dash pattern per curve, so identical curves (e.g. MCPD = 3D when
        # every slice is in the 3D group) stay visible on top of each other
        kw = {
            "marker": _MARKERS[i % len(_MARKERS)],
            "linestyle": _DASHES[i % len(_DASHES)] if len(pts) > 1 else "none",
            "ms": 7 - 1.2 * (i % 3),
            "fillstyle": "none" if i % 2 else "full",
            "label": name,
        }
        ax1.plot(b, p, **kw)
        if np.isfinite(s).any():
            ax2.plot(b[np.isfinite(s)], s[np.isfinite(s)], **kw)
    for ax, label in ((ax1, "PSNR (dB, peak = data range)"), (ax2, "SSIM")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("rate (bits per voxel)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)


def slice_strip(original: np.ndarray, decoded: np.ndarray, path: Path, title: str = "") -> Path:
    """Original, decoded and absolute error of one 2D slice ``(Y, X)`` side by side."""
    from medshared.io import atomic_path

    plt = _pyplot()
    o = np.asarray(original, dtype=np.float64)
    d = np.asarray(decoded, dtype=np.float64)
    err = np.abs(o - d)
    lo, hi = float(o.min()), float(o.max()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(11, 4), constrained_layout=True)
    for ax, img, name, kw in (
        (axes[0], o, "original", {"cmap": "gray", "vmin": lo, "vmax": hi}),
        (axes[1], d, "decoded", {"cmap": "gray", "vmin": lo, "vmax": hi}),
        (axes[2], err, f"|error| (max {err.max():.4g})", {"cmap": "magma"}),
    ):
        im = ax.imshow(img, **kw)
        ax.set_title(name)
        ax.axis("off")
        fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
