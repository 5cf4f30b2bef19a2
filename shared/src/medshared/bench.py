"""Benchmark of medshared's SSIM and HD95 against scikit-image / scipy references.

Runs both the medshared function and its reference on the same 256x256x64 volume in the same
process and prints the median times and their ratio (reference time / medshared time, so > 1
means medshared is faster), and the peak memory each call allocates on top of its inputs
(``tracemalloc``, which sees numpy's buffers; measured in a separate, untimed call). medshared's
SSIM works slab by slab, so its peak stays bounded while the reference's grows with the volume.
scikit-image is needed for the SSIM reference (``pip install scikit-image``); without it that
row is skipped.

Usage: ``medshared bench [--repeats N]`` or ``python -m medshared.bench``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from medshared.metrics import hausdorff95, ssim
from medshared.runner import positive_int

SHAPE = (64, 256, 256)  # (Z, Y, X)


@dataclass
class BenchRow:
    """One benchmark comparison: median seconds of medshared and of the reference."""

    name: str
    ours_s: float
    reference: str
    reference_s: float
    agreement: str
    ours_peak_mib: float = float("nan")
    reference_peak_mib: float = float("nan")

    @property
    def speedup(self) -> float:
        return self.reference_s / self.ours_s


def _median_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), result


def _peak_mib(fn: Callable[[], object]) -> float:
    """Peak MiB allocated (numpy buffers included) while ``fn`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - base) / 2**20


def make_volumes(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A smooth 16-bit-like phantom volume (Z, Y, X) and a noisy, blurred copy."""
    base = ndimage.gaussian_filter(rng.random(SHAPE), sigma=4) * 4000.0
    noisy = ndimage.gaussian_filter(base, sigma=0.7) + rng.normal(0, 20.0, SHAPE)
    return base, noisy


def _hd95_edt_full(a: np.ndarray, b: np.ndarray) -> float:
    """Straightforward reference: full-field EDT per mask, no cropping."""
    sa = a & ~ndimage.binary_erosion(a, border_value=0)
    sb = b & ~ndimage.binary_erosion(b, border_value=0)
    d_ab = ndimage.distance_transform_edt(~sb)[sa]
    d_ba = ndimage.distance_transform_edt(~sa)[sb]
    return float(np.percentile(np.concatenate([d_ab, d_ba]), 95))


def _hd95_kdtree(a: np.ndarray, b: np.ndarray) -> float:
    """Reference via nearest neighbours between surface point sets (scipy cKDTree)."""
    pa = np.argwhere(a & ~ndimage.binary_erosion(a, border_value=0))
    pb = np.argwhere(b & ~ndimage.binary_erosion(b, border_value=0))
    d = np.concatenate([cKDTree(pb).query(pa)[0], cKDTree(pa).query(pb)[0]])
    return float(np.percentile(d, 95))


def run(repeats: int = 3, seed: int = 0) -> list[BenchRow]:
    """Time SSIM and HD95 against their references; returns one row per comparison."""
    rng = np.random.default_rng(seed)
    ref, test = make_volumes(rng)
    rows: list[BenchRow] = []
    data_range = float(ref.max() - ref.min())
    ours_t, ours_v = _median_time(lambda: ssim(ref, test, data_range=data_range), repeats)
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        print("scikit-image not installed: SSIM reference skipped")
    else:
        ref_t, ref_v = _median_time(
            lambda: structural_similarity(
                ref,
                test,
                data_range=data_range,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            ),
            repeats,
        )
        def ours_fn():
            return ssim(ref, test, data_range=data_range)

        def ref_fn():
            return structural_similarity(
                ref, test, data_range=data_range, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False,
            )

        rows.append(
            BenchRow(
                "ssim", ours_t, "skimage", ref_t, f"|diff| {abs(ours_v - ref_v):.1e}",
                _peak_mib(ours_fn), _peak_mib(ref_fn),
            )
        )
    zz, yy, xx = np.indices(SHAPE)
    a = (zz - 32) ** 2 + (yy - 128) ** 2 + (xx - 128) ** 2 <= 20**2
    b = (zz - 33) ** 2 + (yy - 131) ** 2 + (xx - 126) ** 2 <= 22**2
    ours_t, ours_v = _median_time(lambda: hausdorff95(a, b), repeats)
    for name, fn in (("scipy EDT (full field)", _hd95_edt_full), ("scipy cKDTree", _hd95_kdtree)):
        ref_t, ref_v = _median_time(lambda fn=fn: fn(a, b), repeats)
        rows.append(
            BenchRow("hausdorff95", ours_t, name, ref_t, f"|diff| {abs(ours_v - ref_v):.1e}")
        )
    return rows


def format_rows(rows: list[BenchRow]) -> str:
    """Plain-text table of the benchmark rows."""
    lines = [
        f"volume {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} (X x Y x Z), float64",
        f"{'metric':<12} {'medshared s':>12} {'reference':<24} {'ref s':>8} {'ratio':>7}  "
        f"{'peak MiB (ours/ref)':>20}  agreement",
    ]
    for r in rows:
        peak = (
            f"{r.ours_peak_mib:.0f} / {r.reference_peak_mib:.0f}"
            if r.ours_peak_mib == r.ours_peak_mib
            else "-"
        )
        lines.append(
            f"{r.name:<12} {r.ours_s:>12.3f} {r.reference:<24} {r.reference_s:>8.3f} "
            f"{r.speedup:>6.2f}x  {peak:>20}  {r.agreement}"
        )
    lines.append("ratio = reference time / medshared time (> 1: medshared faster)")
    lines.append("peak MiB = memory allocated during one call beyond its inputs (tracemalloc)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medshared bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=positive_int, default=3,
        help="timed runs per function, the median is reported (count, default 3)",
    )
    args = parser.parse_args(argv)
    print(format_rows(run(repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
