import numpy as np

from medshared.metrics import buan
from streamvq.buan import adjacency, centroids
from streamvq.config import EvalConfig
from streamvq.evaluate import reference_centroids, score_groups
from streamvq.grouping import Normalisation, to_tensor_layout


def _bundles(rng, g=3):
    base = np.cumsum(rng.normal(0, 1.0, (g, 1, 64, 3)), axis=2) + rng.normal(0, 1.5, (g, 64, 1, 3))
    rec = base + rng.normal(0, 1.2, base.shape)
    rec[:, :10] = rec[:, 10:20]  # duplicated rows, as in repeated small bundles
    return base.astype(np.float32), rec.astype(np.float32)


def test_clustered_once_equals_medshared_buan_at_every_threshold():
    rng = np.random.default_rng(3)
    x, r = _bundles(rng)
    thr = [0.5, 1.0, 2.0, 4.0]
    for xi, ri in zip(x, r, strict=True):
        got = adjacency(centroids(xi), centroids(ri), thr)
        want = [buan(list(xi), list(ri), threshold=t, clust_thr=(0.0,)) for t in thr]
        assert got == want
        assert got == sorted(got) and got[0] < got[-1] <= 1.0  # thresholds matter here


def test_score_groups_normalised_threshold_equals_buan_in_normalised_units():
    rng = np.random.default_rng(4)
    x, r = _bundles(rng, 2)
    x, r = x * 3 + 10, r * 3 + 10  # mm
    norm = Normalisation.fit(np.concatenate([x, r]))
    xn, rn = to_tensor_layout(norm.to_unit(x)), to_tensor_layout(norm.to_unit(r))
    cfg = EvalConfig(buan_norm_threshold=0.05)
    s = score_groups(xn, rn, norm, cfg, reference_centroids=reference_centroids(xn, norm))
    ux, ur = norm.to_unit(x), norm.to_unit(r)
    for i in range(2):
        assert s.buan_norm[i] == buan(list(ux[i]), list(ur[i]), threshold=0.05, clust_thr=(0.0,))
        for t in cfg.buan_mm_thresholds:
            assert s.buan_mm[t][i] == buan(list(x[i]), list(r[i]), threshold=t, clust_thr=(0.0,))
