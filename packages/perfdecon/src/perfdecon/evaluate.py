"""Evaluation: phantom accuracy per method and core segmentation per AIF source.

* :func:`phantom_accuracy`: Kudo-style grid phantoms (exponential, box and gamma residues) at
  several noise levels; for every method and delay, median and IQR of the CBF, CBV and MTT
  relative errors (%) and of the Tmax error (s) against truth, over cells with MTT >= 4 s (the
  issue's headline subset) -- the true AIF is used so only the deconvolution is tested.
* :func:`segmentation_eval`: brain-like phantom cases (held out from training: case seeds
  ``[seed, i]`` with ``seed`` 10_000 by default, the training phantoms use their own seed);
  the full pipeline with each AIF source (``true``, ``auto`` and, given a checkpoint, ``learned``
  via :func:`perfdecon.predict.predict_aif`), then Dice, Jaccard, HD95 (mm), rCBF ROC AUC and
  lesion volumes (mL) with a Bland-Altman plot, like the paper's Table 1 / Fig. 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfdecon.errors import PerfdeconError

#: (label, method, matrix) evaluated by :func:`phantom_accuracy`.
METHOD_SET = (
    ("tikhonov", "tikhonov", "volterra"),
    ("tikhonov-circ", "tikhonov", "circulant"),
    ("ssvd", "ssvd", "volterra"),
    ("csvd", "csvd", "circulant"),
    ("osvd", "osvd", "circulant"),
)


def _med_iqr(x: np.ndarray) -> tuple[float, float]:
    if x.size == 0:
        return float("nan"), float("nan")
    q1, q2, q3 = np.percentile(x, [25, 50, 75])
    return float(q2), float(q3 - q1)


def phantom_accuracy(
    *,
    seed: int = 0,
    residues: Sequence[str] = ("exponential", "box", "gamma"),
    noise_levels: Sequence[float] = (0.0, 2.0, 5.0),
    delays: Sequence[float] = (0.0, 1.0, 2.0, 3.0),
    methods=METHOD_SET,
    block: int = 6,
    min_mtt: float = 4.0,
) -> list[dict]:
    """Accuracy rows (one per method x residue x noise x delay).

    Row keys: method, residue, noise_hu, delay_s, n, cbf_med/cbf_iqr (% relative error),
    cbv_med/cbv_iqr (%), mtt_med/mtt_iqr (%), tmax_med/tmax_iqr (s, estimate minus truth).
    """
    import torch

    from perfdecon.maps import compute_maps
    from perfdecon.phantom import grid_phantom

    rows = []
    rng = np.random.default_rng(seed)
    for residue in residues:
        for noise in noise_levels:
            g = grid_phantom(rng, residue_shape=residue, noise_hu=noise, delays=delays, block=block)
            ctc = torch.from_numpy(g.ctc)
            aif = torch.from_numpy(g.aif)
            for label, method, matrix in methods:
                with torch.no_grad():
                    mp = compute_maps(ctc, aif, g.dt, method=method, matrix=matrix)
                est = {k: v.numpy() for k, v in mp.as_dict().items()}
                for zi, d in enumerate(delays):
                    sel = g.mtt[zi] >= min_mtt
                    row = {
                        "method": label,
                        "residue": residue,
                        "noise_hu": float(noise),
                        "delay_s": float(d),
                        "n": int(sel.sum()),
                    }
                    for name in ("cbf", "cbv", "mtt"):
                        truth = getattr(g, name)[zi][sel]
                        err = 100.0 * (est[name][zi][sel] / truth - 1.0)
                        row[f"{name}_med"], row[f"{name}_iqr"] = _med_iqr(err)
                    terr = est["tmax"][zi][sel] - g.tmax[zi][sel]
                    row["tmax_med"], row["tmax_iqr"] = _med_iqr(terr)
                    rows.append(row)
    return rows


def accuracy_table(rows: list[dict]) -> str:
    """Text table: per method/residue/noise, CBF error at delay 0 and at the largest delay, the
    change between them (delay sensitivity), and MTT/Tmax errors at delay 0 (medians, IQR)."""
    out = [
        f"{'method':<14}{'residue':<12}{'noise':>6} {'CBF% d=0 [IQR]':>17} {'CBF% dmax':>10} "
        f"{'dCBF%':>7} {'CBV%':>6} {'MTT% [IQR]':>15} {'Tmax s':>7}"
    ]
    keys = []
    for r in rows:
        k = (r["method"], r["residue"], r["noise_hu"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        rs = [r for r in rows if (r["method"], r["residue"], r["noise_hu"]) == k]
        r0 = min(rs, key=lambda r: r["delay_s"])
        rmax = max(rs, key=lambda r: r["delay_s"])
        change = 100.0 * ((1 + rmax["cbf_med"] / 100) / (1 + r0["cbf_med"] / 100) - 1)
        out.append(
            f"{k[0]:<14}{k[1]:<12}{k[2]:>6.1f} {r0['cbf_med']:>8.1f} [{r0['cbf_iqr']:>5.1f}] "
            f"{rmax['cbf_med']:>10.1f} {change:>7.1f} {r0['cbv_med']:>6.1f} "
            f"{r0['mtt_med']:>7.1f} [{r0['mtt_iqr']:>5.1f}] {r0['tmax_med']:>7.2f}"
        )
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# segmentation
# --------------------------------------------------------------------------------------------
def roc_auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for binary ``label`` (Mann-Whitney, ties halved)."""
    from scipy.stats import rankdata

    label = np.asarray(label, bool)
    n1, n0 = int(label.sum()), int((~label).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


_NAN_ROW = {
    k: float("nan")
    for k in (
        "dice",
        "jaccard",
        "hd95_mm",
        "auc",
        "vol_pred_ml",
        "vol_true_ml",
        "penumbra_dice",
        "aif_corr",
    )
}


@dataclass
class SegmentationResult:
    """Per-case rows and per-source summary of :func:`segmentation_eval`."""

    rows: list[dict]
    summary: list[dict]
    messages: list[str]


def _learned_predictor(checkpoint: str | None, messages: list[str]):
    if checkpoint is None:
        messages.append("learned AIF: no --checkpoint given; column skipped")
        return None
    try:
        from perfdecon.predict import predict_aif
    except ImportError as exc:
        messages.append(f"learned AIF: perfdecon.predict is not available ({exc}); column skipped")
        return None
    return lambda ctc, brain: predict_aif(checkpoint, ctc, brain_mask=brain)


def segmentation_eval(
    n_cases: int = 5,
    *,
    seed: int = 10_000,
    checkpoint: str | None = None,
    config=None,
    case_kwargs: dict | None = None,
) -> SegmentationResult:
    """Core segmentation per AIF source on held-out brain phantom cases.

    Row keys: case, source, dice, jaccard, hd95_mm, auc, vol_pred_ml, vol_true_ml,
    penumbra_dice, aif_corr (Pearson correlation of the AIF with the true AIF).
    """
    from medshared.metrics import dice, hausdorff95, iou
    from perfdecon.aif import AifResult, auto_aif
    from perfdecon.phantom import brain_case
    from perfdecon.pipeline import PipelineConfig, run_case, to_concentration

    cfg = config or PipelineConfig()
    messages: list[str] = []
    learned = _learned_predictor(checkpoint, messages)
    rows = []
    for i in range(n_cases):
        case = brain_case(np.random.default_rng([seed, i]), **(case_kwargs or {}))
        conc, brain = to_concentration(case.ctp_hu, cfg)
        vox_ml = float(np.prod(case.spacing)) / 1000.0
        sources = {
            "true": AifResult(
                curve=case.aif.astype(np.float64), source="true", location=case.aif_location
            )
        }
        sources["auto"] = auto_aif(conc, case.dt, brain)
        if learned is not None:
            sources["learned"] = lambda c=conc, b=brain: AifResult(
                curve=np.asarray(learned(c, b), np.float64).ravel(), source="model"
            )
        for name, a in sources.items():
            try:
                if callable(a):
                    a = a()
                res = run_case(
                    conc, case.dt, config=cfg, aif=a, brain_mask=brain, is_concentration=True
                )
            except PerfdeconError as exc:  # e.g. an undertrained network's AIF
                messages.append(f"case {i}, {name} AIF failed: {exc}")
                rows.append({"case": i, "source": name, "failed": True, **_NAN_ROW})
                continue
            truth = case.core_mask
            pred = res.core
            evalmask = brain & ~case.vessel_mask
            rows.append(
                {
                    "case": i,
                    "source": name,
                    "failed": False,
                    "dice": float(dice(pred, truth)),
                    "jaccard": float(iou(pred, truth)),
                    "hd95_mm": float(hausdorff95(pred, truth, spacing=case.spacing))
                    if pred.any() and truth.any()
                    else float("nan"),
                    "auc": roc_auc(-res.rcbf[evalmask], truth[evalmask]),
                    "vol_pred_ml": float(pred.sum() * vox_ml),
                    "vol_true_ml": float(truth.sum() * vox_ml),
                    "penumbra_dice": float(dice(res.penumbra, case.penumbra_mask)),
                    "aif_corr": float(np.corrcoef(a.curve, case.aif)[0, 1]),
                }
            )
    summary = []
    for name in dict.fromkeys(r["source"] for r in rows):
        rs = [r for r in rows if r["source"] == name and not r["failed"]]
        s = {
            "source": name,
            "n": len(rs),
            "n_failed": sum(r["failed"] for r in rows if r["source"] == name),
        }
        for key in ("auc", "dice", "jaccard", "hd95_mm", "penumbra_dice", "aif_corr"):
            v = np.array([r[key] for r in rs], float)
            s[key] = float(np.nanmean(v))
            s[key + "_sd"] = float(np.nanstd(v))
        diff = np.array([r["vol_pred_ml"] - r["vol_true_ml"] for r in rs])
        s["vol_bias_ml"] = float(diff.mean()) if len(diff) else float("nan")
        s["vol_loa_ml"] = float(1.96 * diff.std(ddof=1)) if len(diff) > 1 else float("nan")
        summary.append(s)
    return SegmentationResult(rows=rows, summary=summary, messages=messages)


def segmentation_table(summary: list[dict]) -> str:
    """Text table like the paper's Table 1: mean (SD) per AIF source."""
    out = [
        f"{'AIF':<9}{'n':>3} {'fail':>4} {'rCBF AUC':>9} {'Dice':>14} {'Jaccard':>14} {'HD95 mm':>15} "
        f"{'vol bias mL':>12} {'pen. Dice':>10}"
    ]
    for s in summary:
        out.append(
            f"{s['source']:<9}{s['n']:>3} {s['n_failed']:>4} {s['auc']:>9.3f} {s['dice']:>6.3f} ({s['dice_sd']:.3f})"
            f" {s['jaccard']:>6.3f} ({s['jaccard_sd']:.3f}) {s['hd95_mm']:>6.1f} "
            f"({s['hd95_mm_sd']:5.1f}) {s['vol_bias_ml']:>12.2f} {s['penumbra_dice']:>10.3f}"
        )
    return "\n".join(out)


def bland_altman_plot(path: str | Path, rows: list[dict]) -> None:
    """Volumetric Bland-Altman plot (predicted vs true core volume, mL), one panel per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medshared.io import atomic_path

    sources = list(dict.fromkeys(r["source"] for r in rows))
    fig, axes = plt.subplots(
        1, len(sources), figsize=(4 * len(sources), 3.4), dpi=100, squeeze=False
    )
    for ax, name in zip(axes[0], sources):
        rs = [r for r in rows if r["source"] == name and not r.get("failed", False)]
        p = np.array([r["vol_pred_ml"] for r in rs])
        t = np.array([r["vol_true_ml"] for r in rs])
        mean, diff = (p + t) / 2, p - t
        bias = diff.mean() if len(diff) else float("nan")
        sd = diff.std(ddof=1) if len(diff) > 1 else 0.0
        ax.scatter(mean, diff, s=14)
        for y, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
            ax.axhline(y, color="k", ls=style, lw=0.8)
        ax.set_title(f"{name} AIF: bias {bias:.1f} mL", fontsize=9)
        ax.set_xlabel("mean of predicted and GT core volume (mL)")
        ax.set_ylabel("predicted - GT (mL)")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


EVALUATION_FILES = ("accuracy.json", "segmentation.json", "bland_altman.png")
"""Files :func:`run_evaluation` writes into its ``out`` folder (as one set)."""


def run_evaluation(
    *,
    out: str | Path | None = None,
    cases: int = 5,
    seed: int = 10_000,
    checkpoint: str | Path | None = None,
    noise: Sequence[float] = (0.0, 2.0, 5.0),
    case_kwargs: dict | None = None,
) -> list[str]:
    """``perfdecon evaluate``: accuracy table and core segmentation, optionally written to ``out``.

    ``out`` and ``checkpoint`` are checked before any work. Returns the printed lines.

    Raises
    ------
    PerfdeconError
        A missing checkpoint or an unsafe output folder.
    """
    from medshared.io.outputs import check_output_folder, output_set
    from perfdecon.jsonout import write_json

    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise PerfdeconError(f"--checkpoint {checkpoint}: no such file")
        from perfdecon.predict import load_aif_model

        load_aif_model(checkpoint)  # a file that is not a model export fails here, before work
    inputs = [checkpoint] if checkpoint is not None else []
    if out is not None:
        check_output_folder(out, EVALUATION_FILES, inputs, what="--out")
    lines = []
    rows = phantom_accuracy(noise_levels=tuple(noise))
    lines.append("Phantom accuracy (true AIF; cells with MTT >= 4 s; errors: median [IQR], % or s)")
    lines.append(accuracy_table(rows))
    seg = segmentation_eval(cases, seed=seed, checkpoint=checkpoint, case_kwargs=case_kwargs)
    lines += seg.messages
    lines.append(f"\nCore segmentation on {cases} held-out brain phantoms (Tikhonov 0.3, rCBF < 0.38)")
    lines.append(segmentation_table(seg.summary))
    if out is not None:
        with output_set(out, EVALUATION_FILES, inputs, what="--out") as tmp:
            write_json(tmp / "accuracy.json", rows)
            write_json(tmp / "segmentation.json", {"rows": seg.rows, "summary": seg.summary})
            bland_altman_plot(tmp / "bland_altman.png", seg.rows)
        lines.append(f"wrote {out}")
    return lines


__all__ = [
    "EVALUATION_FILES",
    "METHOD_SET",
    "SegmentationResult",
    "accuracy_table",
    "bland_altman_plot",
    "phantom_accuracy",
    "roc_auc",
    "run_evaluation",
    "segmentation_eval",
    "segmentation_table",
]
