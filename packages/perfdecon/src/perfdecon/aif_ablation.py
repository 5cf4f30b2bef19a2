"""Does the learned AIF depend on its input? A seeded ablation of heads and loss terms.

Every variant trains :class:`~perfdecon.models.AIFNet` with :func:`perfdecon.train.train` on the
same phantom cases (same seed, same budget) and is scored on the same held-out phantom cases
(those ``perfdecon evaluate`` uses, seed 10000):

* ``onset_corr`` / ``peak_corr``: Pearson correlation, across the held-out cases, of the
  predicted AIF's arrival time (first crossing of 10 % of its peak, s, linearly interpolated)
  and peak height (series units, :func:`perfdecon.predict.predict_aif` with ``rescale="none"``)
  with the true AIF's. NaN when the prediction does not change between cases at all.
* ``pairwise_corr``: mean Pearson correlation of the predicted curves between cases (1.0: one
  curve for every case; the true AIFs' value is reported beside it).
* ``aif_corr``: mean correlation of each prediction with its own case's true AIF.
* ``dice`` / ``penumbra_dice``: core and penumbra Dice through the maps pipeline
  (:func:`perfdecon.pipeline.run_case`) with the learned AIF; the true and automatic AIFs give the
  reference rows.

Variants (names accepted by ``--variants``): ``fc`` (the paper's head and loss), ``fc+aux``
(plus the auxiliary term ``--aux-weight``), ``select`` and ``select+aux`` (the attention
selection head), ``fc-p99`` / ``fc-p99+aux`` (the FC head with the input normalisation used
before the fix, the 99th percentile). Command line::

    python -m perfdecon.aif_ablation --out runs/ablate-aif
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfdecon.datasets import LEGACY_INPUT_PERCENTILE
from perfdecon.errors import PerfdeconError

VARIANTS = ("fc", "fc+aux", "select", "select+aux", "fc-p99", "fc-p99+aux")
"""Variant names (head, optional ``-p99`` legacy normalisation, optional ``+aux`` term)."""
OUTPUT_FILES = ("ablation.json", "ablation.md")
"""Files written in the output folder (besides one run folder per variant)."""
ONSET_FRACTION = 0.1
"""Arrival time = first crossing of this fraction of the curve's peak."""


def _m(help_: str, **kw) -> dict:
    return {"help": help_, **kw}


@dataclass(frozen=True)
class AblationConfig:
    """One ablation run (flags are generated from the fields; saved in ``ablation.json``)."""

    variants: tuple[str, ...] = field(
        default=("fc", "fc+aux", "select", "select+aux"),
        metadata=_m(f"variants to train, from {', '.join(VARIANTS)}"),
    )
    cases: int = field(default=12, metadata=_m("training phantom cases", min=1, max=1000))
    size: int = field(default=64, metadata=_m("phantom in-plane size, voxels", min=16, max=512))
    n_slices: int = field(default=2, metadata=_m("phantom slices", min=1, max=32, flag="--slices"))
    n_frames: int = field(
        default=40, metadata=_m("phantom frames (1 s apart)", min=10, max=512, flag="--frames")
    )
    noise_hu: float = field(default=2.0, metadata=_m("phantom noise SD, HU", min=0.0, max=100.0))
    epochs: int = field(default=8, metadata=_m("training epochs per variant", min=1, max=10000))
    lr: float = field(default=0.05, metadata=_m("SGD learning rate", min=1e-9, max=10.0))
    aux_weight: float = field(
        default=1.0, metadata=_m("auxiliary-term weight of the +aux variants", min=0.0, max=100.0)
    )
    dropout: float = field(default=0.1, metadata=_m("dropout probability", min=0.0, max=0.95))
    augment: bool = field(default=True, metadata=_m("perfusion + geometric augmentation"))
    threads: int = field(
        default=1, metadata=_m("torch CPU threads (tiny models: 1 is fastest on a busy machine)",
                               min=1, max=256)
    )
    seed: int = field(default=0, metadata=_m("training seed (cases, weights, order)", min=0))
    eval_cases: int = field(default=8, metadata=_m("held-out phantom cases", min=2, max=1000))
    eval_seed: int = field(default=10_000, metadata=_m("seed of the held-out cases", min=0))
    out: str = field(default="runs/ablate-aif", metadata=_m("output folder"))
    progress: bool = field(default=True, metadata=_m("progress bars"))
    diagnose: bool = field(
        default=False,
        metadata=_m("print the diagnosis instead (true-AIF spread of the training cases, loss "
                    "with own/mean/other/shifted AIFs, pooled-feature spread per normalisation); "
                    "trains nothing"),
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(self.variants))
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad or not self.variants:
            raise PerfdeconError(
                f"--variants: unknown {bad or 'empty list'}; choose from {', '.join(VARIANTS)}"
            )
        if any(v.endswith("+aux") for v in self.variants) and self.aux_weight <= 0:
            raise PerfdeconError("--aux-weight must be > 0 for the +aux variants")


@dataclass
class AblationResult:
    """Outcome of :func:`ablate_aif`: per-case ``rows``, per-variant ``summary``, the table."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    table: str
    out: Path


def arrival_time(curves: np.ndarray, dt: float, fraction: float = ONSET_FRACTION) -> np.ndarray:
    """First crossing of ``fraction`` of each curve's peak, s (linear interpolation).

    Parameters
    ----------
    curves:
        ``(N, T)`` curves, one per row.
    dt:
        Frame interval, s.

    Returns
    -------
    np.ndarray
        ``(N,)`` arrival times in s; 0 when a curve starts above the level, NaN when its peak
        is not positive.
    """
    c = np.asarray(curves, np.float64)
    peak = c.max(axis=1)
    level = fraction * peak
    above = c >= level[:, None]
    i = np.argmax(above, axis=1)
    rows = np.arange(len(c))
    prev = np.maximum(i - 1, 0)
    lo, hi = c[rows, prev], c[rows, i]
    frac = np.where(hi > lo, (level - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    t = np.where(i == 0, 0.0, (prev + frac) * dt)
    return np.where(peak > 0, t, np.nan)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 2 or np.ptp(a) <= 1e-9 * max(1.0, float(np.abs(a).max())) or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def pairwise_correlation(curves: np.ndarray) -> float:
    """Mean Pearson correlation between the rows of ``(N, T)`` curves (N >= 2)."""
    c = np.corrcoef(np.asarray(curves, np.float64))
    return float(c[np.triu_indices(len(c), 1)].mean())


def _variant(name: str) -> dict[str, Any]:
    head = "select" if name.startswith("select") else "fc"
    return {
        "head": head,
        "input_percentile": LEGACY_INPUT_PERCENTILE if "-p99" in name else None,
        "aux": name.endswith("+aux"),
    }


def diagnose(cfg: AblationConfig) -> dict[str, Any]:
    """Why the FC head's AIF ignores its input, measured on the training phantoms of ``cfg``.

    Returns a dict with

    * ``true_aif``: spread over the training cases of the true AIF's arrival time (s), peak
      (series units) and time to peak (s), and its mean pairwise correlation;
    * ``loss``: mean training soft-Dice loss (:func:`perfdecon.objective.case_loss`'s
      deconvolution, smoothing and temperature) with each case's own true AIF, the same ×3, shifted
      by -2/-1/+1/+2 frames, the mean normalised curve of all cases, and other cases' AIFs;
    * ``feature_spread``: per input percentile (the old 99 and the new 50), the across-case
      standard deviation of an untrained FC network's pooled features relative to their mean
      (median over features), and the same for dropout noise on one case.
    """
    import torch

    from perfdecon.augment import shift_bolus
    from perfdecon.config import SMOOTH_T, SMOOTH_XY, TRAIN_CORE_TEMPERATURE
    from perfdecon.datasets import PhantomDataset, network_input
    from perfdecon.losses import soft_dice_loss
    from perfdecon.maps import soft_core_from_aif
    from perfdecon.models import AIFNet
    from perfdecon.preprocess import smooth

    ds = PhantomDataset(cfg.cases, seed=cfg.seed, size=cfg.size, n_slices=cfg.n_slices,
                        n_frames=cfg.n_frames, noise_hu=cfg.noise_hu)
    samples = [ds[i] for i in range(len(ds))]
    dt = samples[0].dt
    aifs = np.stack([s.aif for s in samples]).astype(np.float64)
    on = arrival_time(aifs, dt)
    true = {"arrival_s": [float(on.min()), float(on.max()), float(on.std())],
            "peak": [float(aifs.max(1).min()), float(aifs.max(1).max()), float(aifs.max(1).std())],
            "time_to_peak_s": [float(aifs.argmax(1).min() * dt), float(aifs.argmax(1).max() * dt)],
            "pairwise_corr": pairwise_correlation(aifs)}

    def loss(s, aif) -> float:
        sm = smooth(s.ctc, SMOOTH_XY, SMOOTH_T, mask=s.brain_mask)
        p = soft_core_from_aif(torch.from_numpy(np.ascontiguousarray(sm, np.float32)),
                               torch.as_tensor(np.asarray(aif, np.float32)), s.dt,
                               torch.from_numpy(s.brain_mask), temperature=TRAIN_CORE_TEMPERATURE)
        return float(soft_dice_loss(p, torch.from_numpy(s.core_mask),
                                    mask=torch.from_numpy(s.brain_mask)))

    mean_curve = (aifs / aifs.max(1, keepdims=True)).mean(0)
    n = len(samples)
    trials: dict[str, list[float]] = {"own": [], "own x3": [], "mean curve": [], "other cases": []}
    for k in (-2, -1, 1, 2):
        trials[f"shift {k:+d} frames"] = []
    with torch.no_grad():
        for i, s in enumerate(samples):
            trials["own"].append(loss(s, aifs[i]))
            trials["own x3"].append(loss(s, 3 * aifs[i]))
            trials["mean curve"].append(loss(s, mean_curve))
            trials["other cases"].append(float(np.mean([loss(s, aifs[j])
                                                        for j in range(n) if j != i])))
            for k in (-2, -1, 1, 2):
                trials[f"shift {k:+d} frames"].append(loss(s, shift_bolus(aifs[i], k)))
    spread = {}
    for pct in (LEGACY_INPUT_PERCENTILE, 50.0):
        torch.manual_seed(cfg.seed)
        net = AIFNet(cfg.n_frames, cfg.n_slices, dropout=cfg.dropout, input_percentile=pct)
        xs = [network_input(s.ctc, s.brain_mask, percentile=pct) for s in samples]

        def pooled(x, net=net):
            h = net.conv2d(net.conv3d(x).mean(2))
            return h.mean((2, 3))[0].numpy()

        with torch.no_grad():
            net.eval()
            f = np.stack([pooled(x) for x in xs])
            net.train()
            d = np.stack([pooled(xs[0]) for _ in range(8)])
        m = np.abs(f.mean(0)) + 1e-12
        spread[f"p{pct:g}"] = {"across_cases": float(np.median(f.std(0) / m)),
                               "dropout": float(np.median(d.std(0) / m)),
                               "median_tissue_input": float(np.median(
                                   xs[0][0].numpy().max(0)[samples[0].brain_mask]))}
    return {"true_aif": true, "loss": {k: float(np.mean(v)) for k, v in trials.items()},
            "feature_spread": spread}


def _held_out(cfg: AblationConfig):
    """Held-out phantom cases, preprocessed as ``perfdecon maps`` does (concentration, brain)."""
    from perfdecon.phantom import brain_case
    from perfdecon.pipeline import PipelineConfig, to_concentration

    cases = []
    for i in range(cfg.eval_cases):
        case = brain_case(np.random.default_rng([cfg.eval_seed, i]), size=cfg.size,
                          n_slices=cfg.n_slices, n_frames=cfg.n_frames, noise_hu=cfg.noise_hu)
        conc, brain = to_concentration(case.ctp_hu, PipelineConfig())
        cases.append((case, conc, brain))
    return cases


def _pipeline_scores(case, conc, brain, curve: np.ndarray, source: str) -> dict[str, float]:
    from medshared.metrics import dice
    from perfdecon.aif import AifResult
    from perfdecon.pipeline import run_case

    try:
        res = run_case(conc, case.dt, aif=AifResult(curve=np.asarray(curve, np.float64),
                                                    source=source),
                       brain_mask=brain, is_concentration=True, force=True)
    except PerfdeconError as exc:
        return {"dice": float("nan"), "penumbra_dice": float("nan"), "error": str(exc)}
    return {"dice": float(dice(res.core, case.core_mask)),
            "penumbra_dice": float(dice(res.penumbra, case.penumbra_mask))}


def _train_variant(cfg: AblationConfig, name: str, out: Path):
    from perfdecon.train import train
    from perfdecon.train_config import AIFNetOptions, TrainConfig

    v = _variant(name)
    opts: dict[str, Any] = {"head": v["head"], "dropout": cfg.dropout}
    if v["input_percentile"] is not None:
        opts["input_percentile"] = v["input_percentile"]
    tc = TrainConfig(
        data="phantom", cases=cfg.cases, size=cfg.size, n_slices=cfg.n_slices,
        n_frames=cfg.n_frames, noise_hu=cfg.noise_hu, epochs=cfg.epochs, lr=cfg.lr, folds=1,
        seed=cfg.seed, aux_weight=cfg.aux_weight if v["aux"] else 0.0, augment=cfg.augment,
        model=AIFNetOptions(**opts), out=str(out / name), device="cpu",
        progress=cfg.progress,
    )
    t0 = time.process_time()
    res = train(tc)
    return res.model, time.process_time() - t0


def _summarise(name: str, preds: np.ndarray, truth: np.ndarray, dt: float,
               scores: list[dict]) -> dict[str, Any]:
    on_p, on_t = arrival_time(preds, dt), arrival_time(truth, dt)
    dice = np.array([s["dice"] for s in scores], float)
    pen = np.array([s["penumbra_dice"] for s in scores], float)
    return {
        "variant": name,
        "onset_corr": _corr(on_p, on_t),
        "peak_corr": _corr(preds.max(1), truth.max(1)),
        "pairwise_corr": pairwise_correlation(preds),
        "aif_corr": float(np.mean([np.corrcoef(p, t)[0, 1] for p, t in zip(preds, truth)])),
        "onset_error_s": float(np.nanmean(on_p - on_t)),
        "onset_range_s": [float(np.nanmin(on_p)), float(np.nanmax(on_p))],
        "onset_sd_s": float(np.nanstd(on_p)),
        "peak_cv": float(preds.max(1).std() / abs(preds.max(1).mean())),
        "dice": float(np.nanmean(dice)),
        "dice_sd": float(np.nanstd(dice)),
        "penumbra_dice": float(np.nanmean(pen)),
        "failed": int(np.isnan(dice).sum()),
    }


def ablation_table(summary: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`ablate_aif`'s summary rows."""
    head = ("| variant | onset corr. | peak corr. | pairwise corr. of curves | corr. with true AIF "
            "| onset error (s) | onset range (SD) (s) | peak CV | core Dice (SD) | penumbra Dice "
            "| train CPU s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def f(x, nd=3):
        return "–" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"

    for s in summary:
        rng = s.get("onset_range_s")
        lines.append(
            f"| {s['variant']} | {f(s.get('onset_corr'))} | {f(s.get('peak_corr'))} | "
            f"{f(s.get('pairwise_corr'), 7)} | {f(s.get('aif_corr'))} | "
            f"{f(s.get('onset_error_s'), 2)} | "
            + (f"{rng[0]:.2f}–{rng[1]:.2f} ({s['onset_sd_s']:.3f})" if rng else "–")
            + f" | {f(s.get('peak_cv'))} | {f(s['dice'])} ({f(s['dice_sd'])}) | {f(s['penumbra_dice'])} | "
            f"{f(s.get('train_cpu_s'), 0)} |"
        )
    return "\n".join(lines)


def ablate_aif(config: AblationConfig | None = None) -> AblationResult:
    """Train every variant of ``config`` and score it on the held-out cases (module docstring).

    Writes ``OUT/<variant>/`` (each variant's run folder), ``OUT/ablation.json`` (config, per-case
    rows, summary) and ``OUT/ablation.md`` (the table).
    """
    import torch

    from medshared.io.outputs import check_output_folder
    from perfdecon.train import RUN_FILES

    cfg = config or AblationConfig()
    out = check_output_folder(cfg.out, OUTPUT_FILES, what="--out")  # before any work
    for name in cfg.variants:  # train() would refuse a folder holding a run after hours of work
        if (out / name / "config.json").exists():
            raise PerfdeconError(f"--out {out}: {name}/ already holds a run; use a new folder")
        if out.is_dir():
            check_output_folder(out / name, RUN_FILES, what="--out")
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _ablate(cfg, out)
    finally:
        torch.set_num_threads(threads)


def _ablate(cfg: AblationConfig, out: Path) -> AblationResult:
    from medshared.io import atomic_write_text
    from medshared.training.config import config_to_dict
    from perfdecon.aif import auto_aif
    from perfdecon.jsonout import write_json
    from perfdecon.predict import predict_aif

    out.mkdir(parents=True, exist_ok=True)
    cases = _held_out(cfg)
    dt = float(cases[0][0].dt)
    truth = np.stack([c[0].aif for c in cases]).astype(np.float64)
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for ref in ("true", "auto"):
        curves, scores = [], []
        for i, (case, conc, brain) in enumerate(cases):
            curve = case.aif if ref == "true" else auto_aif(conc, case.dt, brain).curve
            curves.append(np.asarray(curve, np.float64))
            scores.append(_pipeline_scores(case, conc, brain, curve, ref))
            rows.append({"variant": ref, "case": i, **scores[-1]})
        summary.append(_summarise(ref, np.stack(curves), truth, dt, scores))
    for name in cfg.variants:
        model, cpu_s = _train_variant(cfg, name, out)
        preds, scores = [], []
        for i, (case, conc, brain) in enumerate(cases):
            p = predict_aif(model, conc, brain_mask=brain, rescale="none",
                            allow_nonpositive_area=True)
            preds.append(p)
            scores.append(_pipeline_scores(case, conc, brain, p, "model"))
            rows.append({"variant": name, "case": i, "onset_s": float(arrival_time(p[None], dt)[0]),
                         "true_onset_s": float(arrival_time(case.aif[None], dt)[0]),
                         "peak": float(p.max()), "true_peak": float(case.aif.max()),
                         **scores[-1]})
        s = _summarise(name, np.stack(preds), truth, dt, scores)
        s["train_cpu_s"] = cpu_s
        summary.append(s)
    table = ablation_table(summary)
    write_json(out / "ablation.json", {"config": config_to_dict(cfg), "summary": summary,
                                       "rows": rows})
    atomic_write_text(out / "ablation.md", table + "\n")
    return AblationResult(rows=rows, summary=summary, table=table, out=out)


def build_parser() -> argparse.ArgumentParser:
    """Parser of ``python -m perfdecon.aif_ablation`` (one flag per :class:`AblationConfig` field)."""
    from medshared.training.config import add_config_arguments

    p = argparse.ArgumentParser(
        prog="perfdecon ablate-aif",
        description="Train learned-AIF variants (paper FC head, +auxiliary term, selection head) "
        "on the same phantoms and report how much each AIF depends on its input on held-out "
        "cases (arrival/peak correlation with the true AIF, pairwise correlation, core Dice).",
    )
    add_config_arguments(p, AblationConfig)
    p.set_defaults(func=_cmd)
    return p


def _cmd(args: argparse.Namespace) -> int:
    from medshared.training.config import config_from_args
    from perfdecon.jsonout import dumps

    cfg = config_from_args(AblationConfig, args)
    if cfg.diagnose:
        import torch

        torch.set_num_threads(cfg.threads)
        print(dumps(diagnose(cfg)), end="")
        return 0
    res = ablate_aif(cfg)
    print(res.table)
    print(f"wrote {res.out / 'ablation.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (through :func:`medshared.runner.run_cli`)."""
    from medshared.runner import run_cli

    return run_cli(build_parser, argv)


__all__ = [
    "VARIANTS",
    "AblationConfig",
    "AblationResult",
    "ablate_aif",
    "ablation_table",
    "diagnose",
    "arrival_time",
    "build_parser",
    "main",
    "pairwise_correlation",
]


if __name__ == "__main__":
    import sys

    sys.exit(main())
