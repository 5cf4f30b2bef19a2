"""Bundle analytics (BUAN) shape similarity between two streamline bundles (dipy extra).

:func:`buan` scores one pair at one threshold. For many thresholds or many reconstructions of one
reference, cluster each bundle once with :func:`buan_centroids` and score the centroid sets with
:func:`buan_adjacency` (exactly the two steps dipy's ``bundle_shape_similarity`` performs inside).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medshared.errors import MedsharedError, require


def _as_streamlines(bundle: Sequence[np.ndarray], label: str) -> list[np.ndarray]:
    out = []
    for i, s in enumerate(bundle):
        arr = np.asarray(s, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < 2:
            raise MedsharedError(
                f"buan: {label}[{i}] must be an (N, 3) array of points with N >= 2, got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise MedsharedError(f"buan: {label}[{i}] contains NaN or inf")
        out.append(arr)
    return out


def buan(
    bundle_a: Sequence[np.ndarray],
    bundle_b: Sequence[np.ndarray],
    threshold: float = 6.0,
    clust_thr: Sequence[float] = (5.0, 3.0, 1.5),
    rng: np.random.Generator | int | None = 0,
) -> float:
    """BUAN bundle shape similarity (Chandio et al. 2020) via dipy's ``bundle_shape_similarity``.

    Both bundles are clustered with QuickBundlesX (distance thresholds ``clust_thr``, mm,
    applied to streamlines resampled to 20 points); the score is the bundle adjacency of the two
    sets of centroids: the mean of the fractions of centroids of each bundle whose nearest
    centroid in the other (minimum average direct-flip distance, mm) is closer than
    ``threshold`` mm.

    Parameters
    ----------
    bundle_a, bundle_b:
        Sequences of ``(N_i, 3)`` streamlines in the same space, in mm (RAS+).
    threshold:
        Adjacency threshold in mm (dipy default 6); smaller is stricter.
    clust_thr:
        QuickBundlesX thresholds in mm.
    rng:
        Generator or seed for the random streamline ordering used by the clustering; results
        are reproducible for a fixed seed (default 0). ``None`` draws fresh entropy.

    Returns
    -------
    float
        Shape similarity in [0, 1]; 1 means every centroid has an adjacent counterpart. An empty
        bundle gives 0.0.
    """
    bundles = require("dipy.segment.bundles", "dipy")
    streamline_mod = require("dipy.tracking.streamline", "dipy")
    a = _as_streamlines(bundle_a, "bundle_a")
    b = _as_streamlines(bundle_b, "bundle_b")
    if threshold <= 0:
        raise MedsharedError(f"buan: threshold must be positive (mm), got {threshold}")
    if len(a) == 0 or len(b) == 0:
        return 0.0
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    value = bundles.bundle_shape_similarity(
        streamline_mod.Streamlines(a),
        streamline_mod.Streamlines(b),
        generator,
        clust_thr=tuple(float(t) for t in clust_thr),
        threshold=float(threshold),
    )
    return float(value)


def buan_centroids(
    bundle: Sequence[np.ndarray],
    clust_thr: Sequence[float] = (5.0, 3.0, 1.5),
    rng: np.random.Generator | int | None = 0,
):  # noqa: ANN201 - dipy Streamlines
    """QuickBundlesX centroids of one bundle (dipy ``cluster_bundle``), for :func:`buan_adjacency`.

    ``clust_thr`` in the units of the coordinates (mm for :func:`buan`'s defaults); ``(0,)``
    gives one cluster per distinct streamline, as in the streamvq authors' evaluation (then the
    result depends neither on ``rng`` nor on a uniform scaling of the coordinates).
    """
    bundles = require("dipy.segment.bundles", "dipy")
    streamline_mod = require("dipy.tracking.streamline", "dipy")
    lines = streamline_mod.Streamlines(_as_streamlines(bundle, "bundle"))
    if len(lines) == 0:
        return lines
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return streamline_mod.Streamlines(
        bundles.cluster_bundle(lines, clust_thr=tuple(float(t) for t in clust_thr), rng=generator)
    )


def buan_adjacency(centroids_a, centroids_b, thresholds: Sequence[float]) -> list[float]:  # noqa: ANN001
    """Bundle adjacency (dipy ``ba_analysis``) of two centroid sets at each threshold.

    Thresholds are in the units of the centroids' coordinates; an empty set scores 0.
    """
    bundles = require("dipy.segment.bundles", "dipy")
    if any(float(t) <= 0 for t in thresholds):
        raise MedsharedError(f"buan: thresholds must be positive, got {list(thresholds)}")
    if len(centroids_a) == 0 or len(centroids_b) == 0:
        return [0.0 for _ in thresholds]
    return [float(bundles.ba_analysis(centroids_a, centroids_b, threshold=float(t)))
            for t in thresholds]
