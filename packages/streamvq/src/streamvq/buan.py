"""BUAN for many thresholds and many reconstructions of one bundle, clustering each bundle once.

``medshared.metrics.buan(a, b, threshold, clust_thr)`` (dipy's ``bundle_shape_similarity``)
clusters both bundles with QuickBundlesX on every call and then scores the bundle adjacency of
the two sets of centroids at one threshold. The clustering does not depend on the threshold, and
with the authors' setting (``clust_thr=(0,)``: one cluster per distinct streamline) it does not
depend on the random order either, nor on a uniform scaling of the coordinates. Scoring one
reference against five models at four thresholds therefore needs 6 clusterings instead of 40:
this module calls dipy's own ``cluster_bundle`` once per bundle and dipy's ``ba_analysis`` once
per threshold, which is exactly what ``bundle_shape_similarity`` does inside (checked against
``medshared.metrics.buan`` in the tests). Thresholds are in the units of the coordinates given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: QuickBundlesX thresholds of the authors' evaluation: one cluster per distinct streamline.
ONE_CLUSTER_PER_STREAMLINE: tuple[float, ...] = (0.0,)


def centroids(bundle: np.ndarray | Sequence[np.ndarray],
              clust_thr: Sequence[float] = ONE_CLUSTER_PER_STREAMLINE):  # noqa: ANN201
    """QuickBundlesX centroids of one bundle (dipy ``cluster_bundle``, seed 0 as medshared).

    Parameters
    ----------
    bundle : (S, P, 3) array or sequence of (N_i, 3) arrays
        Streamlines (mm or normalised units; finite, >= 2 points each).
    """
    from medshared.errors import require

    bundles = require("dipy.segment.bundles", "dipy")
    sl = require("dipy.tracking.streamline", "dipy")
    lines = sl.Streamlines([np.asarray(s, dtype=np.float32) for s in bundle])
    return sl.Streamlines(bundles.cluster_bundle(
        lines, clust_thr=tuple(float(t) for t in clust_thr), rng=np.random.default_rng(0)))


def adjacency(c1, c2, thresholds: Sequence[float]) -> list[float]:  # noqa: ANN001
    """Bundle adjacency of two centroid sets at each threshold (dipy ``ba_analysis``)."""
    from medshared.errors import require

    bundles = require("dipy.segment.bundles", "dipy")
    if len(c1) == 0 or len(c2) == 0:
        return [0.0 for _ in thresholds]
    return [float(bundles.ba_analysis(c1, c2, threshold=float(t))) for t in thresholds]
