"""Paired evaluation: SSIM, LNCC, PSNR and LPIPS per organ and overall, Wilcoxon tests, grids.

Two conventions (images arrive as float arrays in [0, 1], i.e. 8/16-bit grey level / peak):

``paper``
    8-bit grey levels (x 255). SSIM (Gaussian window sigma 1.5) and PSNR with ``MAX_I = 255``,
    the peak of the 8-bit images, as in the paper's formulas; LNCC with a 9x9 box window
    (medshared's default; the paper does not state its window).
``challenge``
    The USEnhance 2023 grading: images scaled to [0, 1]; LNCC with an 11x11 box window; SSIM and
    PSNR with the pair's joint data range ``max(H.max, H'.max) - min(H.min, H'.min)``.

LPIPS (VGG, inputs in [-1, 1]) is the same in both. All image metrics come from
:mod:`medshared.metrics`. A metric computed with a randomly initialised VGG trunk is reported as
``LPIPS(random VGG)``.

Significance: for every other model and metric, a one-sided Wilcoxon signed-rank test
(``scipy.stats.wilcoxon`` on the per-image values, paired by image) of the alternative "the
proposed model is better": ``alternative="greater"`` on ``proposed - other`` for SSIM, LNCC and
PSNR, ``"less"`` for LPIPS (lower is better), as in the paper's Table 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medshared.metrics import lncc, psnr, ssim
from usenhance.errors import UsenhanceError

__all__ = ["CONVENTIONS", "EvalResult", "evaluate_models", "image_metrics", "save_grids",
           "wilcoxon_better"]

CONVENTIONS = ("paper", "challenge")
HIGHER_BETTER = {"SSIM": True, "LNCC": True, "PSNR": True, "LPIPS": False}


def image_metrics(ref: np.ndarray, test: np.ndarray, convention: str) -> dict[str, float]:
    """SSIM, LNCC and PSNR of ``test`` against ``ref`` (both ``(Y, X)`` in [0, 1]).

    Parameters
    ----------
    ref, test : np.ndarray
        The real high-quality image and the enhanced one, same shape.
    convention : str
        ``"paper"`` or ``"challenge"`` (see the module docstring).
    """
    if ref.shape != test.shape:
        raise UsenhanceError(f"metrics: image shapes differ {ref.shape} vs {test.shape}")
    r = np.asarray(ref, dtype=np.float64)
    t = np.asarray(test, dtype=np.float64)
    if convention == "paper":
        r8, t8 = r * 255.0, t * 255.0
        return {"SSIM": ssim(r8, t8, data_range=255.0), "LNCC": lncc(r8, t8, window=9),
                "PSNR": psnr(r8, t8, data_range=255.0)}
    if convention == "challenge":
        joint = max(float(r.max()), float(t.max())) - min(float(r.min()), float(t.min()))
        joint = joint if joint > 0 else 1.0
        return {"SSIM": ssim(r, t, data_range=joint), "LNCC": lncc(r, t, window=11),
                "PSNR": psnr(r, t, data_range=joint)}
    raise UsenhanceError(f"--convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")


def wilcoxon_better(proposed: Sequence[float], other: Sequence[float], higher_is_better: bool) -> float:
    """One-sided Wilcoxon signed-rank p-value for "proposed is better than other" (paired).

    Returns 1.0 when every paired difference is zero (no evidence either way).
    """
    from scipy.stats import wilcoxon

    d = np.asarray(proposed, dtype=float) - np.asarray(other, dtype=float)
    if d.size == 0 or np.all(d == 0):
        return 1.0
    res = wilcoxon(d, alternative="greater" if higher_is_better else "less")
    return float(res.pvalue)


@dataclass
class EvalResult:
    """Per-image values and their summaries.

    Attributes
    ----------
    per_image : dict
        ``per_image[convention][model][metric]`` -> list of floats (test-image order).
    organs : list of str
        The organ of each test image.
    names : list of str
        ``organ/file`` of each test image.
    summary : dict
        ``summary[convention][model][organ or "overall"][metric]`` -> mean.
    pvalues : dict
        ``pvalues[convention][model][metric]`` -> one-sided p that the proposed model is better.
    lpips_label : str
        ``"LPIPS"`` or ``"LPIPS(random VGG)"``.
    proposed : str
        The model the tests compare against.
    """

    per_image: dict
    organs: list[str]
    names: list[str]
    summary: dict
    pvalues: dict
    lpips_label: str
    proposed: str
    models: list[str] = field(default_factory=list)

    def table(self, convention: str) -> str:
        """A plain-text table: model x metric means (overall) with p-values."""
        metrics = ["SSIM", "LNCC", "PSNR", "LPIPS"]
        head = ["model"] + [self.lpips_label if m == "LPIPS" else m for m in metrics]
        rows = [head]
        for model in self.models:
            s = self.summary[convention][model]["overall"]
            cells = [model]
            for m in metrics:
                cell = f"{s[m]:.4f}"
                if model != self.proposed:
                    cell += f" (p={self.pvalues[convention][model][m]:.2g})"
                cells.append(cell)
            rows.append(cells)
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite values become None)."""
        def clean(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        return clean({"proposed": self.proposed, "lpips_label": self.lpips_label,
                      "models": self.models, "names": self.names, "organs": self.organs,
                      "summary": self.summary, "pvalues": self.pvalues,
                      "per_image": self.per_image})


def _lpips_values(perceptual: Any, refs: Sequence[np.ndarray], tests: Sequence[np.ndarray]) -> list[float]:
    import torch

    out = []
    with torch.inference_mode():
        for r, t in zip(refs, tests, strict=True):
            a = torch.from_numpy(np.asarray(r, np.float32) * 2 - 1)[None, None]
            b = torch.from_numpy(np.asarray(t, np.float32) * 2 - 1)[None, None]
            out.append(float(perceptual(a, b).item()))
    return out


def evaluate_models(lows: Sequence[np.ndarray], highs: Sequence[np.ndarray],
                    organs: Sequence[str], names: Sequence[str],
                    models: Mapping[str, Callable[[np.ndarray], np.ndarray]], proposed: str,
                    perceptual: Any, lpips_label: str,
                    conventions: Sequence[str] = CONVENTIONS,
                    outputs: dict[str, list[np.ndarray]] | None = None,
                    quiet: bool = True) -> EvalResult:
    """Enhance every test image with every model and score it against its high-quality image.

    Parameters
    ----------
    lows, highs : sequence of np.ndarray
        Test pairs ``(Y, X)`` in [0, 1] (same shape within a pair).
    organs, names : sequence of str
        Organ and name of each pair.
    models : mapping of str to callable
        ``name -> enhance(low) -> image``; include ``"reference-low"`` (identity) to score the
        unenhanced input.
    proposed : str
        Name of the model the Wilcoxon tests compare against (must be in ``models``).
    perceptual : callable
        LPIPS module ``(a, b) -> (N,)`` on [-1, 1] tensors (:func:`usenhance.perceptual.build_lpips`).
    lpips_label : str
        How LPIPS figures are labelled.
    conventions : sequence of str
        Which metric conventions to compute.
    outputs : dict, optional
        Filled with each model's enhanced images (for grids).
    quiet : bool
        No progress bar (one step per model).
    """
    from medshared.training import progress

    if proposed not in models:
        raise UsenhanceError(f"--proposed {proposed!r} is not one of the models ({', '.join(models)})")
    if not lows:
        raise UsenhanceError("evaluate: no test pairs")
    for lo, hi, n in zip(lows, highs, names, strict=True):
        if lo.shape != hi.shape:
            raise UsenhanceError(f"evaluate: pair {n}: low {lo.shape} and high {hi.shape} differ in size")
    per: dict = {c: {} for c in conventions}
    enhanced = {}
    for name, fn in progress(list(models.items()), desc="evaluate", enabled=not quiet):
        enhanced[name] = [np.clip(np.asarray(fn(lo), dtype=np.float32), 0, 1) for lo in lows]
        lp = _lpips_values(perceptual, highs, enhanced[name])
        for c in conventions:
            vals = [image_metrics(hi, e, c) for hi, e in zip(highs, enhanced[name], strict=True)]
            per[c][name] = {m: [v[m] for v in vals] for m in ("SSIM", "LNCC", "PSNR")}
            per[c][name]["LPIPS"] = lp
    if outputs is not None:
        outputs.update(enhanced)
    groups = sorted(set(organs))
    org = np.asarray(organs)
    summary: dict = {}
    pvals: dict = {}
    for c in conventions:
        summary[c], pvals[c] = {}, {}
        for name in models:
            summary[c][name] = {}
            for g in [*groups, "overall"]:
                sel = np.ones(len(org), bool) if g == "overall" else org == g
                summary[c][name][g] = {m: float(np.mean(np.asarray(v)[sel]))
                                       for m, v in per[c][name].items()}
            if name != proposed:
                pvals[c][name] = {m: wilcoxon_better(per[c][proposed][m], per[c][name][m],
                                                     HIGHER_BETTER[m]) for m in HIGHER_BETTER}
    return EvalResult(per, list(organs), list(names), summary, pvals, lpips_label, proposed,
                      list(models))


def save_grids(folder: Path, lows: Sequence[np.ndarray], highs: Sequence[np.ndarray],
               organs: Sequence[str], outputs: Mapping[str, Sequence[np.ndarray]],
               per_organ: int = 3) -> list[Path]:
    """Side-by-side PNG grids, one per organ: rows = test images, columns = low / models / high.

    ``outputs`` maps model name -> enhanced images (the identity model is skipped, being the
    low column). Files: ``folder/grid_<organ>.png`` (written atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medshared.io import atomic_path

    cols = ["low (input)"] + [m for m in outputs if m != "reference-low"] + ["high (target)"]
    written = []
    for organ in sorted(set(organs)):
        idx = [i for i, o in enumerate(organs) if o == organ][:per_organ]
        fig, axes = plt.subplots(len(idx), len(cols), figsize=(2.2 * len(cols), 2.3 * len(idx)),
                                 squeeze=False)
        for r, i in enumerate(idx):
            imgs = [lows[i]] + [outputs[m][i] for m in cols[1:-1]] + [highs[i]]
            for c, img in enumerate(imgs):
                ax = axes[r, c]
                ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(cols[c], fontsize=9)
        fig.suptitle(organ)
        fig.tight_layout()
        target = Path(folder) / f"grid_{organ}.png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
        plt.close(fig)
        written.append(target)
    return written


@dataclass(frozen=True)
class EvaluationRun:
    """Result of :func:`run_evaluation`: the scores and the files written."""

    result: EvalResult
    files: list[Path]


def run_evaluation(root: str | Path, checkpoints: Mapping[str, str | Path], out: str | Path, *,
                   proposed: str, split: str = "test", fractions: tuple[float, float, float] = (
                       0.7, 0.1, 0.2), split_seed: int = 0, lpips_weights: str | Path | None = None,
                   lpips_random_backbone: bool = False, max_images: int = 0,
                   quiet: bool = True) -> EvaluationRun:
    """Score checkpoints (and reference-low) on a split of a paired dataset; write the results.

    Writes ``metrics.json`` (per image, per organ, overall, p-values), ``table_<convention>.txt``
    and ``grid_<organ>.png`` into ``out`` (all or nothing).
    """
    import json

    from medshared.io.atomic import atomic_write_text
    from medshared.io.outputs import output_set
    from usenhance.data import find_pairs, load_images, split_pairs
    from usenhance.perceptual import build_lpips
    from usenhance.predict import load_enhancer

    pairs = find_pairs(root)
    sp = split_pairs(pairs, fractions, split_seed)
    chosen = {"train": sp.train, "val": sp.val, "test": sp.test, "all": pairs}[split]
    if max_images > 0:
        chosen = chosen[:max_images]
    if not chosen:
        raise UsenhanceError(f"dataset {root}: the {split} split is empty")
    names = ["reference-low", *checkpoints]
    with output_set(out, None, [c for c in checkpoints.values()], what="--out") as stage:
        models: dict[str, Callable] = {"reference-low": lambda x: x}
        for name, ck in checkpoints.items():
            models[name] = load_enhancer(ck)
        if proposed not in models:
            raise UsenhanceError(f"--proposed {proposed!r} is not one of {', '.join(names)}")
        per = build_lpips(lpips_weights, lpips_random_backbone)
        lows, highs = load_images(chosen)
        outputs: dict[str, list[np.ndarray]] = {}
        res = evaluate_models([x.image for x in lows], [x.image for x in highs],
                              [x.organ for x in lows], [f"{x.organ}/{x.path.name}" for x in lows],
                              models, proposed, per.module, per.label, outputs=outputs,
                              quiet=quiet)
        atomic_write_text(stage / "metrics.json", json.dumps(res.to_json(), indent=1) + "\n")
        for c in CONVENTIONS:
            atomic_write_text(stage / f"table_{c}.txt", res.table(c) + "\n")
        grids = save_grids(stage, [x.image for x in lows], [x.image for x in highs],
                           [x.organ for x in lows], outputs)
        files = ["metrics.json", *[f"table_{c}.txt" for c in CONVENTIONS], *[g.name for g in grids]]
    return EvaluationRun(res, [Path(out) / f for f in files])
