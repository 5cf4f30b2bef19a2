"""The paper's Table 1 protocol on real ISLES18 data (``perfdecon evaluate --isles ROOT``).

For every training case (``ROOT/case_N`` with ``CT_4DPWI`` and the ``OT`` core mask) and every
AIF source (``auto`` and, given a model export, ``learned``): the default pipeline
(:func:`perfdecon.pipeline.run_case`), then Dice, HD95 (mm), the core volume difference
(predicted - OT, mL) and the ROC AUC of ``-rCBF`` for the OT voxels inside the brain mask. A
case that fails is reported with its one-line reason; the others go on. Arrays are
``(Z, Y, X[, T])`` (:func:`perfdecon.isles.load_isles_case` transposes on reading).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfdecon.errors import PerfdeconError

ISLES_FILES = ("isles.json", "isles.csv")
"""Files :func:`run_isles_evaluation` writes into its ``out`` folder (as one set)."""
METRICS = ("dice", "hd95_mm", "vol_diff_ml", "auc")


@dataclass
class IslesReport:
    """Per-case rows (case, source, status, metrics, error) and per-source summary."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]


def _case_rows(case_dir: Path, cfg, checkpoint) -> list[dict[str, Any]]:
    from medshared.metrics import dice, hausdorff95
    from perfdecon.aif import AifResult, auto_aif
    from perfdecon.evaluate import roc_auc
    from perfdecon.isles import load_isles_case
    from perfdecon.pipeline import run_case, to_concentration

    case = load_isles_case(case_dir, modalities=("CT_4DPWI", "OT"))
    conc, brain = to_concentration(case.ctp, cfg)
    vox_ml = float(np.prod(case.spacing)) / 1000.0
    sources: dict[str, Callable[[], Any]] = {"auto": lambda: auto_aif(conc, case.dt, brain)}
    if checkpoint is not None:
        from perfdecon.predict import predict_aif

        def learned() -> AifResult:
            curve = predict_aif(checkpoint, conc, brain_mask=brain, allow_nonpositive_area=True)
            return AifResult(curve=np.asarray(curve, np.float64), source="model")

        sources["learned"] = learned
    truth = case.core & brain
    rows = []
    for name, make in sources.items():
        t0 = time.perf_counter()
        row: dict[str, Any] = {"case": case.case_id, "source": name, "status": "ok", "error": ""}
        try:
            res = run_case(conc, case.dt, config=cfg, aif=make(), brain_mask=brain,
                           is_concentration=True, force=True)
            pred = res.core & brain
            row.update(
                dice=float(dice(pred, truth)),
                hd95_mm=float(hausdorff95(pred, truth, spacing=case.spacing))
                if pred.any() and truth.any() else float("nan"),
                vol_diff_ml=float((pred.sum() - truth.sum()) * vox_ml),
                auc=roc_auc(-res.rcbf[brain], truth[brain]),
                vol_true_ml=float(truth.sum() * vox_ml),
                aif_quality=float(res.aif.quality),
            )
            row["error"] = "; ".join(res.warnings)
        except PerfdeconError as exc:
            row.update(status="failed", error=str(exc))
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
    return rows


def isles_evaluation(
    root: str | Path,
    *,
    checkpoint: str | Path | None = None,
    config=None,
    max_cases: int | None = None,
    progress: bool = False,
) -> IslesReport:
    """Run the protocol on the ``case_N`` folders of ``root`` (see the module docstring)."""
    from tqdm.auto import tqdm

    from medshared.errors import MedsharedError
    from perfdecon.config import MapsConfig
    from perfdecon.isles import find_isles_cases

    cfg = config or MapsConfig()
    cases = find_isles_cases(root)[:max_cases]
    rows: list[dict[str, Any]] = []
    for case_dir in tqdm(cases, desc="ISLES cases", disable=not progress):
        try:
            rows += _case_rows(case_dir, cfg, checkpoint)
        except (MedsharedError, OSError) as exc:
            rows.append({"case": case_dir.name, "source": "all", "status": "failed",
                         "error": str(exc)})
    summary = []
    for source in dict.fromkeys(r["source"] for r in rows if r["source"] != "all"):
        ok = [r for r in rows if r["source"] == source and r["status"] == "ok"]
        s: dict[str, Any] = {"source": source, "n": len(ok),
                             "n_failed": sum(r["status"] != "ok" for r in rows
                                             if r["source"] in (source, "all"))}
        for key in METRICS:
            v = np.array([r[key] for r in ok], float)
            s[key] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
            s[key + "_sd"] = float(np.nanstd(v)) if np.isfinite(v).any() else float("nan")
        summary.append(s)
    return IslesReport(rows=rows, summary=summary)


def format_isles(report: IslesReport) -> str:
    """Table 1 layout: mean (SD) per AIF source."""
    lines = [f"{'AIF':<8}{'n':>4}{'fail':>5} {'Dice':>14} {'HD95 mm':>15} {'vol diff mL':>16} "
             f"{'AUC':>6}"]
    for s in report.summary:
        lines.append(
            f"{s['source']:<8}{s['n']:>4}{s['n_failed']:>5} {s['dice']:>6.3f} ({s['dice_sd']:.3f})"
            f" {s['hd95_mm']:>6.1f} ({s['hd95_mm_sd']:5.1f}) {s['vol_diff_ml']:>7.2f} "
            f"({s['vol_diff_ml_sd']:5.2f}) {s['auc']:>6.3f}"
        )
    for r in report.rows:
        if r["status"] != "ok":
            lines.append(f"{r['case']} ({r['source']}): failed: {r['error']}")
    return "\n".join(lines)


def run_isles_evaluation(
    root: str | Path,
    *,
    out: str | Path | None = None,
    checkpoint: str | Path | None = None,
    max_cases: int | None = None,
    progress: bool = False,
) -> list[str]:
    """``perfdecon evaluate --isles ROOT``: print lines; write ``out/isles.json|csv`` as a set."""
    import csv
    import io

    from medshared.io.outputs import check_output_folder, output_set
    from perfdecon.jsonout import json_safe, write_json

    if not Path(root).is_dir():
        raise PerfdeconError(f"--isles {root}: no such folder")
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise PerfdeconError(f"--checkpoint {checkpoint}: no such file")
        from perfdecon.predict import load_aif_model

        load_aif_model(checkpoint)  # refuse a file that is not a model export before work
    inputs = [checkpoint] if checkpoint is not None else []
    if out is not None:
        check_output_folder(out, ISLES_FILES, inputs, what="--out")
    report = isles_evaluation(root, checkpoint=checkpoint, max_cases=max_cases,
                              progress=progress)
    lines = [f"ISLES18 core segmentation ({root}), default pipeline, rCBF < 0.38",
             format_isles(report)]
    if out is not None:
        keys = ["case", "source", "status", *METRICS, "vol_true_ml", "aif_quality", "seconds",
                "error"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in json_safe(report.rows):
            w.writerow({k: ("" if r.get(k) is None else r.get(k, "")) for k in keys})
        with output_set(out, ISLES_FILES, inputs, what="--out") as tmp:
            write_json(tmp / "isles.json", {"rows": report.rows, "summary": report.summary})
            (tmp / "isles.csv").write_text(buf.getvalue())
        lines.append(f"wrote {out}")
    return lines


__all__ = ["ISLES_FILES", "IslesReport", "format_isles", "isles_evaluation",
           "run_isles_evaluation"]
