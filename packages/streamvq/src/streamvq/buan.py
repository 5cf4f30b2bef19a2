"""BUAN for many thresholds and many reconstructions of one bundle, clustering each bundle once.

A thin layer over :func:`medshared.metrics.buan_centroids` / :func:`medshared.metrics.buan_adjacency`
(the two steps of dipy's ``bundle_shape_similarity``, which ``medshared.metrics.buan`` runs per
call): scoring one reference against five models at four thresholds needs 6 clusterings instead
of 40. With the authors' setting (``clust_thr=(0,)``: one cluster per distinct streamline) the
clustering depends neither on the random order nor on a uniform scaling of the coordinates, so
thresholds are simply in the units of the coordinates given (checked against
``medshared.metrics.buan`` in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: QuickBundlesX thresholds of the authors' evaluation: one cluster per distinct streamline.
ONE_CLUSTER_PER_STREAMLINE: tuple[float, ...] = (0.0,)


def centroids(bundle: np.ndarray | Sequence[np.ndarray],
              clust_thr: Sequence[float] = ONE_CLUSTER_PER_STREAMLINE):  # noqa: ANN201
    """QuickBundlesX centroids of one bundle (seed 0, as ``medshared.metrics.buan``).

    Parameters
    ----------
    bundle : (S, P, 3) array or sequence of (N_i, 3) arrays
        Streamlines (mm or normalised units; finite, >= 2 points each).
    """
    from medshared.metrics import buan_centroids

    return buan_centroids(list(bundle), clust_thr=clust_thr, rng=0)


def adjacency(c1, c2, thresholds: Sequence[float]) -> list[float]:  # noqa: ANN001
    """Bundle adjacency of two centroid sets at each threshold."""
    from medshared.metrics import buan_adjacency

    return buan_adjacency(c1, c2, thresholds)
