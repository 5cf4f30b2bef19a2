"""``wdrcodec bench``: WDR against OpenJPEG (JPEG 2000) and SPERR-3D, run in the same process.

Anchors come from ``imagecodecs`` (extra ``bench``):

* **J2K**: ``imagecodecs.jpeg2k_encode`` slice by slice (``numthreads=1``). Its rate knob
  ``level`` is a per-slice quality target in whole dB, so the J2K rate-distortion curve is swept
  over ``level`` and its PSNR at WDR's *actual* rate is interpolated linearly in ``log(rate)``
  between the two neighbouring J2K points ("equal actual rate"). Lossless: ``reversible=True``.
* **SPERR-3D**: ``imagecodecs.sperr_encode(volume, level=bpv, mode="bpp")`` on the float64
  volume, decoded, rounded and clipped to the original's value range like WDR's decoder.

All PSNR figures are at the true data range ``max - min``, computed on integer outputs of the
original dtype. Speed is measured on a 64 x 256 x 256 uint16 volume at
1 bpv, single thread for every codec, best of three runs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from wdrcodec.codec import decode, encode
from wdrcodec.data import dipy_s0, nibabel_example4d, speed_volume
from wdrcodec.errors import WdrError
from wdrcodec.evaluate import warm_up

RATES = [0.25, 0.5, 1.0, 2.0]


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError as exc:
        raise WdrError('the benchmark needs imagecodecs: pip install "wdrcodec[bench]"') from exc
    # touching the codec classes first loads the extension modules (avoids lazy-stub errors)
    if not imagecodecs.JPEG2K.available:
        raise WdrError("imagecodecs was built without JPEG 2000 (OpenJPEG) support")
    return imagecodecs


def _psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR (dB) at the reference's data range, through :func:`medshared.metrics.psnr`."""
    from medshared.metrics import psnr

    return psnr(ref, test, data_range=float(ref.max()) - float(ref.min()) or 1.0)


def _to_dtype(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), ref.min(), ref.max()).astype(ref.dtype)


def j2k_curve(ic, vol: np.ndarray, levels) -> list[tuple[float, float]]:
    """``[(bpv, psnr)]`` of slice-by-slice J2K over quality ``levels`` (sorted by rate)."""
    pts = []
    for lv in levels:
        blobs = [ic.jpeg2k_encode(np.ascontiguousarray(s), level=lv, numthreads=1) for s in vol]
        dec = np.stack([ic.jpeg2k_decode(b, numthreads=1) for b in blobs]).reshape(vol.shape)
        pts.append((sum(len(b) for b in blobs) * 8 / vol.size, _psnr(vol, dec)))
    return sorted(pts)


def interpolate(curve: list[tuple[float, float]], rate: float) -> float:
    """PSNR at ``rate`` by linear interpolation in ``log(rate)``; NaN outside the curve."""
    for (r0, p0), (r1, p1) in zip(curve, curve[1:]):
        if r0 <= rate <= r1 and r1 > r0:
            w = (math.log(rate) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return p0 + w * (p1 - p0)
    return float("nan")


def sperr_point(ic, vol: np.ndarray, bpv: float) -> tuple[float, float]:
    """``(actual bpv, psnr)`` of SPERR-3D at a target rate."""
    blob = ic.sperr_encode(vol.astype(np.float64), level=bpv, mode="bpp", numthreads=1)
    dec = ic.sperr_decode(blob, numthreads=1).reshape(vol.shape)
    return len(blob) * 8 / vol.size, _psnr(vol, _to_dtype(dec, vol))


def _best_time(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run_bench(quick: bool = False, json_path: Path | None = None) -> int:
    """Run the benchmark, print the tables and optionally write JSON. Returns 0."""
    ic = _imagecodecs()
    has_sperr = bool(getattr(ic, "SPERR", None) and ic.SPERR.available)
    warm_up()
    results: dict = {"rd": [], "lossless": [], "speed": {}}
    rates = [0.5, 1.0] if quick else RATES
    levels = list(range(30, 100, 2))
    print("Rate-distortion, PSNR at the true data range (dB); J2K interpolated at WDR's rate")
    print(
        f"{'volume':<22}{'bpv':>6}{'WDR-3D':>8}{'WDR-2D':>8}{'MCPD':>8}{'J2K':>8}"
        f"{'SPERR':>8}{'(bpv)':>7}{'d J2K':>7}{'d SPERR':>8}"
    )
    for sample in (dipy_s0(), nibabel_example4d()):
        vol = sample.array
        curve = j2k_curve(ic, vol, levels)
        for bpv in rates:
            row = {"volume": sample.name, "target_bpv": bpv}
            for mode in ("3d", "2d", "mcpd"):
                blob = encode(vol, bpv=bpv, mode=mode)
                row[f"wdr_{mode}"] = _psnr(vol, decode(blob))
                row[f"wdr_{mode}_bpv"] = len(blob) * 8 / vol.size
            row["j2k"] = interpolate(curve, row["wdr_3d_bpv"])
            if has_sperr:
                row["sperr_bpv"], row["sperr"] = sperr_point(ic, vol, bpv)
            else:
                row["sperr_bpv"], row["sperr"] = float("nan"), float("nan")
            results["rd"].append(row)
            print(
                f"{sample.name:<22}{row['wdr_3d_bpv']:>6.3f}{row['wdr_3d']:>8.2f}"
                f"{row['wdr_2d']:>8.2f}{row['wdr_mcpd']:>8.2f}{row['j2k']:>8.2f}"
                f"{row['sperr']:>8.2f}{row['sperr_bpv']:>7.3f}{row['wdr_3d'] - row['j2k']:>+7.2f}"
                f"{row['wdr_3d'] - row['sperr']:>+8.2f}"
            )
        blob = encode(vol, lossless=True)
        assert np.array_equal(decode(blob), vol)
        j2k = sum(
            len(ic.jpeg2k_encode(np.ascontiguousarray(s), level=0, reversible=True, numthreads=1))
            for s in vol
        )
        row = {"volume": sample.name, "wdr": vol.nbytes / len(blob), "j2k": vol.nbytes / j2k}
        results["lossless"].append(row)
    print("\nLossless compression ratio (original bytes / compressed bytes)")
    for row in results["lossless"]:
        print(
            f"{row['volume']:<22} WDR-3D {row['wdr']:.3f}  J2K {row['j2k']:.3f}  "
            f"ratio {row['wdr'] / row['j2k']:.3f}"
        )

    vol = speed_volume() if not quick else speed_volume()[:16]
    mb = vol.nbytes / 1e6
    te, blob = _best_time(lambda: encode(vol, bpv=1.0))
    td, _ = _best_time(lambda: decode(blob))
    wdr_bytes = len(blob)
    # J2K at the level whose total size is closest to the WDR file
    best = None
    for lv in range(30, 100, 2):
        size = sum(len(ic.jpeg2k_encode(s, level=lv, numthreads=1)) for s in vol[::8])
        size *= vol.shape[0] / len(vol[::8])
        if best is None or abs(size - wdr_bytes) < abs(best[1] - wdr_bytes):
            best = (lv, size)
    lv = best[0]
    tje, jb = _best_time(lambda: [ic.jpeg2k_encode(s, level=lv, numthreads=1) for s in vol])
    tjd, _ = _best_time(lambda: [ic.jpeg2k_decode(b, numthreads=1) for b in jb])
    speed = {
        "shape": list(vol.shape),
        "wdr_bpv": wdr_bytes * 8 / vol.size,
        "j2k_bpv": sum(len(b) for b in jb) * 8 / vol.size,
        "wdr_encode_mbs": mb / te,
        "wdr_decode_mbs": mb / td,
        "j2k_encode_mbs": mb / tje,
        "j2k_decode_mbs": mb / tjd,
    }
    if has_sperr:
        tse, sb = _best_time(
            lambda: ic.sperr_encode(vol.astype(np.float64), level=1.0, mode="bpp", numthreads=1)
        )
        tsd, _ = _best_time(lambda: ic.sperr_decode(sb, numthreads=1))
        speed.update(sperr_encode_mbs=mb / tse, sperr_decode_mbs=mb / tsd)
    tle, lb = _best_time(lambda: encode(vol, lossless=True))
    tld, _ = _best_time(lambda: decode(lb))
    tjle, jlb = _best_time(
        lambda: [ic.jpeg2k_encode(s, level=0, reversible=True, numthreads=1) for s in vol]
    )
    tjld, _ = _best_time(lambda: [ic.jpeg2k_decode(b, numthreads=1) for b in jlb])
    speed.update(
        wdr_lossless_ratio=vol.nbytes / len(lb),
        j2k_lossless_ratio=vol.nbytes / sum(len(b) for b in jlb),
        wdr_lossless_encode_mbs=mb / tle,
        wdr_lossless_decode_mbs=mb / tld,
        j2k_lossless_encode_mbs=mb / tjle,
        j2k_lossless_decode_mbs=mb / tjld,
    )
    results["speed"] = speed
    print(f"\nSpeed on {vol.shape} uint16 at ~1 bpv (MB/s of input, single thread, best of 3)")
    print(
        f"WDR encode {speed['wdr_encode_mbs']:.1f}  decode {speed['wdr_decode_mbs']:.1f}  "
        f"({speed['wdr_bpv']:.3f} bpv)"
    )
    print(
        f"J2K encode {speed['j2k_encode_mbs']:.1f}  decode {speed['j2k_decode_mbs']:.1f}  "
        f"({speed['j2k_bpv']:.3f} bpv)"
    )
    if has_sperr:
        print(
            f"SPERR encode {speed['sperr_encode_mbs']:.1f}  decode {speed['sperr_decode_mbs']:.1f}"
        )
    print(
        f"lossless: WDR ratio {speed['wdr_lossless_ratio']:.3f} encode "
        f"{speed['wdr_lossless_encode_mbs']:.1f} decode {speed['wdr_lossless_decode_mbs']:.1f}; "
        f"J2K ratio {speed['j2k_lossless_ratio']:.3f} encode "
        f"{speed['j2k_lossless_encode_mbs']:.1f} decode {speed['j2k_lossless_decode_mbs']:.1f}"
    )
    print(
        f"ratios WDR/J2K: encode {speed['wdr_encode_mbs'] / speed['j2k_encode_mbs']:.2f} "
        f"(goal >= 1), decode {speed['wdr_decode_mbs'] / speed['j2k_decode_mbs']:.2f} "
        "(goal >= 0.5)"
    )
    if json_path is not None:
        from medshared.io import atomic_write_text

        atomic_write_text(json_path, json.dumps(results, indent=2, default=float))
    return 0
