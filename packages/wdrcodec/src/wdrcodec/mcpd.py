"""Mean co-located pixel difference (MCPD) slice grouping (Zerva et al., eq. 1 and Algorithm 2).

For slices ``x_i`` of a ``(Z, Y, X)`` volume, ``MCPD(i, j) = mean |x_i - x_j|`` over all pixels,
and slice ``i``'s score is the average of ``MCPD(i, j)`` over every following slice ``j > i``
(the last slice scores 0, as in the paper's Table 2). Slices scoring ``<= threshold`` are coded
together as one 3D volume, the others one by one with 2D WDR.

The paper gives no intensity scale for its threshold of 0.5. Here intensities are normalised
first, with ``norm``:

* ``"std"`` (default): divide by the standard deviation of the whole volume, so MCPD is in units
  of the volume's intensity spread and the same threshold means the same thing for 8-bit, 12-bit
  and 16-bit data;
* ``"range"``: map to ``[0, 1]`` with the volume's min and max;
* ``"none"``: raw stored intensity units.
"""

from __future__ import annotations

import numpy as np

from wdrcodec.errors import WdrError

NORMS = ("std", "range", "none")


def normalise(volume: np.ndarray, norm: str) -> np.ndarray:
    """Return ``volume`` (float64) scaled according to ``norm`` (see module docstring)."""
    v = np.asarray(volume, dtype=np.float64)
    if norm == "none":
        return v
    if norm == "std":
        sd = float(v.std())
        return v / sd if sd > 0 else v * 0.0
    if norm == "range":
        lo, hi = float(v.min()), float(v.max())
        return (v - lo) / (hi - lo) if hi > lo else v * 0.0
    raise WdrError(f"mcpd_norm must be one of {NORMS}, got {norm!r}")


def mcpd_scores(volume: np.ndarray, norm: str = "std") -> np.ndarray:
    """Average MCPD of each slice with all following slices; ``(Z,)`` float64.

    Parameters
    ----------
    volume:
        ``(Z, Y, X)`` array, slices along axis 0.
    norm:
        Intensity normalisation applied first: ``"std"``, ``"range"`` or ``"none"``.
    """
    v = normalise(volume, norm)
    z = v.shape[0]
    scores = np.zeros(z, dtype=np.float64)
    for i in range(z - 1):  # one vectorised pass per slice, not per pixel
        scores[i] = float(np.abs(v[i + 1 :] - v[i]).mean())
    return scores


def mcpd_grouping(volume: np.ndarray, threshold: float = 0.5, norm: str = "std") -> np.ndarray:
    """Boolean ``(Z,)`` mask of slices coded in the 3D group (score ``<= threshold``).

    A group of fewer than two slices is not a volume: then every slice is coded in 2D.
    """
    if not np.isfinite(threshold) or threshold < 0:
        raise WdrError(f"mcpd_threshold must be a finite number >= 0, got {threshold}")
    mask = mcpd_scores(volume, norm) <= threshold
    if mask.sum() < 2:
        mask[:] = False
    return mask
