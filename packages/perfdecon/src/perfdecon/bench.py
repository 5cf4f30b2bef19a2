"""Benchmark: a whole brain-phantom case -> all maps with automatic AIF.

Prints the pipeline time (and its parts), the ratio against a straightforward per-voxel numpy
loop (timed on a subset of voxels and extrapolated to the whole brain -- stated in the output),
and the cost of oSVD relative to sSVD/cSVD on the same concentration data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from perfdecon.config import HEMATOCRIT_FACTOR, LAMBDA_REL, RHO, TMAX_LOBE_FRACTION


@dataclass
class BenchResult:
    """Figures of :func:`run_bench` (seconds unless stated)."""

    shape: tuple[int, int, int, int]
    n_brain: int
    threads: int
    pipeline_s: float
    pipeline_cpu_s: float
    parts: dict[str, float]
    loop_voxels: int
    loop_s_measured: float
    loop_s_extrapolated: float
    speedup_maps: float
    speedup_total: float
    method_s: dict[str, float]
    method_torch_s: dict[str, float] = field(default_factory=dict)


def numpy_loop_maps(ctc: np.ndarray, aif: np.ndarray, dt: float, lambda_rel: float = LAMBDA_REL) -> dict:
    """Baseline: per-voxel Python loop (regularised inverse precomputed once, fairly).

    ``ctc`` is ``(n, T)``; returns CBF/CBV/MTT/Tmax (onset; ``tmax_peak`` the peak time)/TTP
    arrays ``(n,)`` with the same conventions as :func:`perfdecon.maps.compute_maps`.
    """
    n_t = len(aif)
    a = np.zeros((n_t, n_t))
    for i in range(1, n_t):
        a[i, 0] = (aif[i - 1] + 2 * aif[i]) / 6
        a[i, i] = (2 * aif[0] + aif[1]) / 6
        for j in range(1, i):
            a[i, j] = (aif[i - j - 1] + 4 * aif[i - j] + aif[i - j + 1]) / 6
    a *= dt
    u, s, vh = np.linalg.svd(a)
    lam = lambda_rel * s[0]
    x = vh.T @ np.diag(s / (s**2 + lam**2)) @ u.T
    area_a = np.trapezoid(aif, dx=dt)
    out = {k: np.zeros(len(ctc)) for k in ("cbf", "cbv", "mtt", "tmax", "tmax_peak", "ttp")}
    scale = HEMATOCRIT_FACTOR / RHO
    for v in range(len(ctc)):
        c = ctc[v]
        k = x @ c
        cbf = max(6000 * scale * k.max(), 0.0)
        cbv = max(100 * scale * np.trapezoid(c, dx=dt) / area_a, 0.0)
        out["cbf"][v] = cbf
        out["cbv"][v] = cbv
        out["mtt"][v] = 60 * cbv / cbf if cbf > 1e-6 else 0.0
        j = int(np.argmax(k))
        delta = 0.0
        if 0 < j < n_t - 1:  # sub-frame peak: vertex of the parabola through k[j-1..j+1]
            den = k[j - 1] - 2 * k[j] + k[j + 1]
            if den < 0:
                delta = min(max(0.5 * (k[j - 1] - k[j + 1]) / den, -0.5), 0.5)
        out["tmax_peak"][v] = (j + delta) * dt
        # onset Tmax (the default): the first local maximum reaching half the global one,
        # then the last frame below half of it before it, interpolated
        if k[j] > 0:
            for m in range(n_t):
                left = k[m - 1] if m > 0 else -np.inf
                right = k[m + 1] if m < n_t - 1 else -np.inf
                if k[m] >= left and k[m] >= right and k[m] >= TMAX_LOBE_FRACTION * k[j]:
                    j = m
                    break
        below = np.nonzero(k[:j] < 0.5 * k[j])[0]
        if len(below):
            i = int(below[-1])
            step = k[i + 1] - k[i] if k[i + 1] > k[i] else 1.0
            out["tmax"][v] = (i + min(max((0.5 * k[j] - k[i]) / step, 0.0), 1.0)) * dt
        out["ttp"][v] = np.argmax(c) * dt
    return out


def run_bench(
    *,
    n_slices: int = 8,
    size: int = 256,
    n_frames: int = 60,
    loop_voxels: int = 3000,
    seed: int = 0,
    repeats: int = 3,
) -> BenchResult:
    """Time the pipeline on one brain phantom case (best of ``repeats``)."""
    import torch

    from perfdecon.maps import compute_maps
    from perfdecon.phantom import brain_case
    from perfdecon.pipeline import PipelineConfig, run_case

    case = brain_case(np.random.default_rng(seed), n_slices=n_slices, size=size, n_frames=n_frames)
    cfg = PipelineConfig()
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        c0 = time.process_time()
        res = run_case(case.ctp_hu, case.dt, config=cfg, aif="auto")
        el = time.perf_counter() - t0
        if best is None or el < best[0]:
            best = (el, res, time.process_time() - c0)
    pipeline_s, res, cpu_s = best
    brain = res.brain_mask
    curves = res.ctc[brain]
    rng = np.random.default_rng(1)
    sub = curves[rng.choice(len(curves), size=min(loop_voxels, len(curves)), replace=False)]
    t0 = time.perf_counter()
    numpy_loop_maps(sub.astype(np.float64), res.aif.curve, case.dt)
    loop_s = time.perf_counter() - t0
    loop_ext = loop_s * len(curves) / len(sub)
    from perfdecon import npmaps

    method_s: dict[str, float] = {}
    method_torch_s: dict[str, float] = {}
    ctc_t = torch.from_numpy(res.ctc)
    mask_t = torch.from_numpy(brain)
    aif_t = torch.from_numpy(res.aif.curve).float()
    for label, method, matrix in (
        ("tikhonov", "tikhonov", "volterra"),
        ("ssvd", "ssvd", "volterra"),
        ("csvd", "csvd", "circulant"),
        ("osvd", "osvd", "circulant"),
    ):
        times, times_t = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            npmaps.compute_maps(res.ctc, res.aif.curve, case.dt, method=method, matrix=matrix,
                                mask=brain)
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with torch.no_grad():
                compute_maps(ctc_t, aif_t, case.dt, method=method, matrix=matrix, mask=mask_t)
            times_t.append(time.perf_counter() - t0)
        method_s[label] = min(times)
        method_torch_s[label] = min(times_t)
    return BenchResult(
        shape=tuple(case.ctp_hu.shape),
        n_brain=int(brain.sum()),
        threads=torch.get_num_threads(),
        pipeline_s=pipeline_s,
        pipeline_cpu_s=cpu_s,
        parts=dict(res.timings),
        loop_voxels=len(sub),
        loop_s_measured=loop_s,
        loop_s_extrapolated=loop_ext,
        speedup_maps=loop_ext / res.timings["maps"],
        speedup_total=loop_ext / pipeline_s,
        method_s=method_s,
        method_torch_s=method_torch_s,
    )


def format_bench(r: BenchResult) -> str:
    """Human-readable report of :func:`run_bench`."""
    z, y, x, t = r.shape
    parts = ", ".join(f"{k} {v:.3f}" for k, v in r.parts.items() if k != "total")
    lines = [
        f"case {y}x{x}x{z} x {t} frames, {r.n_brain} brain voxels, torch threads {r.threads}",
        f"pipeline (HU -> concentration, auto AIF, smoothing, Tikhonov maps, rCBF, core): "
        f"{r.pipeline_s:.3f} s wall, {r.pipeline_cpu_s:.3f} s CPU  [{parts}]",
        f"per-voxel numpy loop (deconvolution + maps only): {r.loop_s_measured:.3f} s for "
        f"{r.loop_voxels} voxels, extrapolated to {r.n_brain} voxels: {r.loop_s_extrapolated:.2f} s",
        f"speed-up: maps step {r.speedup_maps:.0f}x, whole pipeline {r.speedup_total:.1f}x "
        f"(the loop does less work than the pipeline)",
        "maps by method (same data, s; numpy path of `perfdecon maps`): "
        + ", ".join(f"{k} {v:.3f}" for k, v in r.method_s.items()),
        "maps by method, torch (differentiable) implementation: "
        + ", ".join(f"{k} {v:.3f}" for k, v in r.method_torch_s.items()),
        f"oSVD / sSVD = {r.method_s['osvd'] / r.method_s['ssvd']:.1f}x, "
        f"oSVD / cSVD = {r.method_s['osvd'] / r.method_s['csvd']:.1f}x",
    ]
    return "\n".join(lines)


@dataclass
class CohortBench:
    """Figures of :func:`run_cohort_bench` (seconds; CPU = user + system of the children)."""

    n_cases: int
    shape: tuple[int, int, int, int]
    single_wall: list[float]
    single_cpu: float
    batch_wall: float
    batch_cpu: float
    batch_case_wall: list[float]


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cohort_bench(
    n_cases: int = 4, *, size: int = 72, n_slices: int = 2, n_frames: int = 50
) -> CohortBench:
    """``perfdecon maps`` on ``n_cases`` phantom cases: one process per case vs one batch call.

    Both are timed as fresh ``python -m perfdecon.cli`` processes, so the batch pays the
    interpreter start-up and the imports (numpy, scipy, nibabel, matplotlib) once.
    """
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from perfdecon.phantom_job import PhantomSpec, write_phantom

    cmd = [sys.executable, "-m", "perfdecon.cli", "maps"]
    with tempfile.TemporaryDirectory(prefix="perfdecon-cohort-bench-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        for i in range(n_cases):
            case = root / f"case{i}"
            write_phantom(case, PhantomSpec(seed=i, slices=n_slices, size=size, frames=n_frames))
            (case / "ctp.nii.gz").rename(root / "in" / f"case{i}.nii.gz")
        (root / "single").mkdir()
        single = []
        c0 = _children_cpu()
        for i in range(n_cases):
            t0 = time.perf_counter()
            subprocess.run([*cmd, str(root / "in" / f"case{i}.nii.gz"), "--out",
                            str(root / "single" / f"case{i}"), "--quiet"], check=True,
                           capture_output=True)
            single.append(time.perf_counter() - t0)
        single_cpu = _children_cpu() - c0
        c0 = _children_cpu()
        t0 = time.perf_counter()
        subprocess.run([*cmd, str(root / "in"), "--out", str(root / "batch"), "--quiet"],
                       check=True, capture_output=True)
        batch_wall = time.perf_counter() - t0
        batch_cpu = _children_cpu() - c0
        rows = json.loads((root / "batch" / "cohort.json").read_text())["cases"]
    return CohortBench(n_cases, (n_slices, size, size, n_frames), single, single_cpu,
                       batch_wall, batch_cpu, [r["wall_s"] for r in rows])


def format_cohort_bench(r: CohortBench) -> str:
    """Per-case wall time of batch mode next to the single-call time."""
    z, y, x, t = r.shape
    per_single = sum(r.single_wall) / r.n_cases
    return "\n".join([
        f"cohort of {r.n_cases} cases {y}x{x}x{z} x {t} frames (perfdecon maps)",
        f"one process per case: {per_single:.2f} s wall per case "
        f"({', '.join(f'{w:.2f}' for w in r.single_wall)}), {r.single_cpu / r.n_cases:.2f} s CPU "
        "per case",
        f"one batch call:       {r.batch_wall / r.n_cases:.2f} s wall per case incl. start-up "
        f"({r.batch_wall:.2f} s total; in-process per case "
        f"{', '.join(f'{w:.2f}' for w in r.batch_case_wall)}), {r.batch_cpu / r.n_cases:.2f} s "
        "CPU per case",
        f"batch / single wall per case: {r.batch_wall / sum(r.single_wall):.2f}",
    ])


def main() -> None:  # pragma: no cover - manual entry point
    print(format_bench(run_bench()))


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["BenchResult", "format_bench", "numpy_loop_maps", "run_bench"]
