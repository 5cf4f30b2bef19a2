"""Reconstruction scores: BUAN (paper setting and mm thresholds) and MDF, per tract and overall.

BUAN is dipy's ``bundle_shape_similarity`` with one cluster per streamline (``clust_thr=(0,)``, as
the authors call ``bundle_shape_similarity(x, x_recon, rng, [0], threshold=0.05)``), computed by
:mod:`streamvq.buan`, which clusters each bundle once for all thresholds and models (equal to
``medshared.metrics.buan`` call by call, see the tests). The
paper's threshold 0.05 is in **normalised [-1, 1] units** (the coordinates the network sees), i.e.
``0.05 * (hi - lo) / 2`` mm for a dataset normalised with ``lo``/``hi`` mm; we also report BUAN in
mm (thresholds 1, 2, 4 mm) on the coordinates mapped back to mm, and the mean point-wise distance
(MDF, direct, paired rows) in mm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from streamvq.config import EvalConfig
from streamvq.geometry import mdf
from streamvq.grouping import Normalisation, from_tensor_layout


@dataclass(frozen=True)
class GroupScores:
    """Per-group scores of one model (arrays of shape ``(G,)``)."""

    buan_norm: np.ndarray
    buan_mm: dict[float, np.ndarray]
    mdf_mm: np.ndarray
    mse: np.ndarray


def score_groups(x_norm: np.ndarray, r_norm: np.ndarray, norm: Normalisation,
                 config: EvalConfig = EvalConfig(), *, show_progress: bool = False,
                 desc: str = "BUAN", reference_centroids: list | None = None) -> GroupScores:
    """Score reconstructions ``r_norm`` of ``x_norm`` (both ``(G, 3, S, P)``, normalised).

    ``reference_centroids`` (from :func:`reference_centroids`) saves re-clustering ``x_norm``
    when several models are scored on the same groups.
    """
    from medshared.training import progress
    from streamvq.buan import adjacency, centroids

    xs, rs = from_tensor_layout(x_norm), from_tensor_layout(r_norm)
    xm, rm = norm.to_mm(xs), norm.to_mm(rs)
    g = len(xs)
    thresholds = [float(t) for t in config.buan_mm_thresholds]
    # one clustering per bundle (in mm); the normalised threshold is the same adjacency test in
    # mm (the normalisation is one scale factor for all axes; clust_thr 0 is scale-free)
    all_thr = [config.buan_norm_threshold * norm.mm_per_unit, *thresholds]
    ref = reference_centroids if reference_centroids is not None else [None] * g
    bn = np.zeros(g)
    bmm = {t: np.zeros(g) for t in thresholds}
    for i in progress(range(g), total=g, desc=desc, enabled=show_progress, unit="group"):
        cx = ref[i] if ref[i] is not None else centroids(xm[i])
        vals = adjacency(cx, centroids(rm[i]), all_thr)
        bn[i] = vals[0]
        for t, v in zip(thresholds, vals[1:], strict=True):
            bmm[t][i] = v
    return GroupScores(bn, bmm, mdf(xm, rm).mean(axis=1),
                       ((np.asarray(x_norm) - np.asarray(r_norm)) ** 2).mean(axis=(1, 2, 3)))


def reference_centroids(x_norm: np.ndarray, norm: Normalisation) -> list:
    """Centroids (mm) of every group of ``x_norm`` ``(G, 3, S, P)``, for :func:`score_groups`."""
    from streamvq.buan import centroids

    return [centroids(b) for b in norm.to_mm(from_tensor_layout(x_norm))]


def reconstruct(model, bundles_norm: np.ndarray, batch_size: int = 64,  # noqa: ANN001
                stochastic: bool = False) -> np.ndarray:
    """Run ``model`` (a :class:`~streamvq.train.TrainedModel`) on normalised bundles."""
    import torch

    net = model.model
    net.set_stochastic(stochastic)
    outs = []
    dev = next(net.parameters()).device
    with torch.no_grad():
        for i in range(0, len(bundles_norm), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(bundles_norm[i: i + batch_size]))
            outs.append(net(x.to(dev)).recon.float().cpu().numpy())
    net.set_stochastic(False)
    return np.concatenate(outs)


@dataclass
class ReconTable:
    """Table-1-like results: ``values[model][column][tract] = (mean, sd, n)``."""

    columns: list[str]
    tracts: list[str]
    values: dict[str, dict[str, dict[str, tuple[float, float, int]]]] = field(default_factory=dict)
    mm_per_unit: float = 1.0

    def add(self, model: str, scores: GroupScores, tract_labels: Sequence[str]) -> None:
        """Add one model's per-group scores (``tract_labels[i]`` is the tract of group i)."""
        labels = np.asarray(tract_labels)
        cols = self._columns(scores)
        entry: dict[str, dict[str, tuple[float, float, int]]] = {}
        for name, arr in cols.items():
            per = {}
            for t in self.tracts:
                v = arr[labels == t]
                if len(v):
                    per[t] = (float(v.mean()), float(v.std()), int(len(v)))
            per["overall"] = (float(arr.mean()), float(arr.std()), int(len(arr)))
            entry[name] = per
        self.values[model] = entry

    def _columns(self, s: GroupScores) -> dict[str, np.ndarray]:
        cols = {self.columns[0]: s.buan_norm}
        for t, arr in s.buan_mm.items():
            cols[f"BUAN@{t:g}mm"] = arr
        cols["MDF mm"] = s.mdf_mm
        return cols

    def format(self, column: str | None = None) -> str:
        """Text table: tracts as rows, models as columns, ``mean ± sd`` (one table per column)."""
        models = list(self.values)
        out = []
        for col in [column] if column else self.columns:
            header = [col, *models]
            rows = [header]
            for t in [*self.tracts, "overall"]:
                row = [t]
                for m in models:
                    v = self.values[m].get(col, {}).get(t)
                    row.append("-" if v is None else f"{v[0]:.4f} ± {v[1]:.4f}")
                rows.append(row)
            widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
            lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
            lines.insert(1, "  ".join("-" * w for w in widths))
            out.append("\n".join(lines))
        return "\n\n".join(out)

    def to_json(self) -> dict:
        """Plain-JSON form."""
        return {"columns": self.columns, "tracts": self.tracts, "mm_per_unit": self.mm_per_unit,
                "values": {m: {c: {t: {"mean": v[0], "sd": v[1], "n": v[2]}
                                   for t, v in per.items()} for c, per in e.items()}
                           for m, e in self.values.items()}}


def evaluate_models(
    models: Mapping[str, object],
    bundles_norm: np.ndarray,
    tract_labels: Sequence[str],
    norm: Normalisation,
    config: EvalConfig = EvalConfig(),
    *,
    show_progress: bool = False,
) -> ReconTable:
    """Score every model on the same normalised groups; returns the Table-1-like table."""
    cols = [f"BUAN@{config.buan_norm_threshold:g}norm",
            *[f"BUAN@{float(t):g}mm" for t in config.buan_mm_thresholds], "MDF mm"]
    tracts = sorted(set(tract_labels))
    table = ReconTable(cols, tracts, mm_per_unit=norm.mm_per_unit)
    ref = reference_centroids(bundles_norm, norm)
    for name, model in models.items():
        rec = reconstruct(model, bundles_norm, config.batch_size, config.stochastic)
        scores = score_groups(bundles_norm, rec, norm, config, show_progress=show_progress,
                              desc=f"BUAN {name}", reference_centroids=ref)
        table.add(name, scores, tract_labels)
    return table
