"""``wdrcodec bench``: WDR against OpenJPEG (JPEG 2000), SPERR-3D, JPEG-XL, JPEG-LS and HTJ2K,
all in the same process, single thread.

Anchors come from ``imagecodecs`` (extra ``bench``):

* **J2K**: ``jpeg2k_encode`` slice by slice (``numthreads=1``). Its rate knob ``level`` is a
  per-slice quality target in whole dB, so for the built-in volumes its curve is swept over
  ``level`` and its PSNR at WDR's actual rate is interpolated in ``log(rate)``. For the speed
  table the level whose rate is closest to the target is found first, and **WDR is then encoded
  at exactly J2K's actual rate** (WDR's rate control is exact), so every ratio there is at equal
  rate.
* **SPERR-3D**: ``sperr_encode(volume, level=bpv, mode="bpp")`` on the float64 volume, decoded,
  rounded and clipped to the original's value range like WDR's decoder.
* Lossless: J2K ``reversible=True``, JPEG-XL ``lossless=True, effort=7``, JPEG-LS and HTJ2K
  reversible, all slice by slice.

* **HTJ2K**: ``htj2k_encode`` (OpenJPH) slice by slice; its knob is a quantisation step, swept
  over :data:`~wdrcodec.evaluate.HTJ2K_STEPS` and interpolated at WDR's rate like J2K.

PSNR is at the true data range ``max - min`` (:func:`medshared.metrics.psnr`) on integer outputs
of the original dtype. With a pictures folder (``plots``), each rate-distortion volume gets
``rd_<volume>.png`` (PSNR and SSIM against bpv: WDR 3D/ctx/2D/MCPD and the anchors of
:func:`wdrcodec.evaluate.anchor_curves`, the same curves ``eval --plot`` draws) and
``strip_<volume>.png`` (original, WDR-3D decode at ``strip_bpv``, error:
:func:`wdrcodec.evaluate.write_strip`, the one ``eval --strip`` uses). The speed volumes are 64 x 256 x 256 uint16: the smooth resampled S0
(:func:`~wdrcodec.data.speed_volume`), a noisy MRI-like synthetic
(:func:`~wdrcodec.data.noisy_volume`) and real example4d data tiled
(:func:`~wdrcodec.data.real_tiled_volume`). Times are the best of three runs; WDR and J2K
decodes run in turn in every round (:func:`run_speed`: the speed table alone, best of five).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from wdrcodec.codec import decode, encode
from wdrcodec.data import dipy_s0, nibabel_example4d, noisy_volume, real_tiled_volume, speed_volume
from wdrcodec.errors import WdrError
from wdrcodec.jit import ensure_compiled

RATES = [0.25, 0.5, 1.0, 2.0]
SECTIONS = ("rd", "speed", "lossless", "contexts", "startup", "threads")  # in the order run
STRIP_BPV = 0.5  # bits/voxel of the pictures' slice strip
# the rate-distortion volumes: (file-name stem of their pictures, loader)
RD_VOLUMES = (("S0_10slices", dipy_s0), ("example4d_0", nibabel_example4d))


def picture_paths(plots: Path) -> list[Path]:
    """The PNGs a benchmark with the pictures folder ``plots`` writes (known before any work,
    so the command line can check every one first)."""
    names = [f"{kind}_{stem}.png" for stem, _ in RD_VOLUMES for kind in ("rd", "strip")]
    return [Path(plots) / n for n in names]


def _imagecodecs():
    from medshared.errors import MissingExtraError

    try:
        import imagecodecs
    except ImportError as exc:
        raise MissingExtraError(
            'the benchmark needs imagecodecs: pip install "wdrcodec[bench]"'
        ) from exc
    # touching the codec classes first loads the extension modules (avoids lazy-stub errors)
    if not imagecodecs.JPEG2K.available:
        raise WdrError("imagecodecs was built without JPEG 2000 (OpenJPEG) support")
    return imagecodecs


def _has(ic, name: str) -> bool:
    codec = getattr(ic, name, None)
    return bool(codec is not None and codec.available)


def _psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR (dB) at the reference's data range, through :func:`medshared.metrics.psnr`."""
    from medshared.metrics import psnr

    return psnr(ref, test, data_range=float(ref.max()) - float(ref.min()) or 1.0)


def _ssim(ref: np.ndarray, test: np.ndarray) -> float:
    """SSIM at the reference's data range, through :func:`medshared.metrics.ssim`."""
    from medshared.metrics import ssim

    return float(ssim(ref, test, data_range=float(ref.max()) - float(ref.min()) or 1.0))


def _to_dtype(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), ref.min(), ref.max()).astype(ref.dtype)


def _j2k(ic, vol: np.ndarray, level: float) -> list[bytes]:
    return [ic.jpeg2k_encode(np.ascontiguousarray(s), level=level, numthreads=1) for s in vol]


def _j2k_decode(ic, blobs: list[bytes], shape) -> np.ndarray:
    return np.stack([ic.jpeg2k_decode(b, numthreads=1) for b in blobs]).reshape(shape)


def j2k_curve(ic, vol: np.ndarray, levels, with_ssim: bool = False) -> list[tuple]:
    """``[(bpv, psnr)]`` (``with_ssim``: ``(bpv, psnr, ssim)``) of slice-by-slice J2K over
    quality ``levels``, sorted by rate."""
    pts = []
    for lv in levels:
        blobs = _j2k(ic, vol, lv)
        dec = _j2k_decode(ic, blobs, vol.shape)
        pt = (sum(len(b) for b in blobs) * 8 / vol.size, _psnr(vol, dec))
        pts.append((*pt, _ssim(vol, dec)) if with_ssim else pt)
    return sorted(pts)


def interpolate(curve: list[tuple[float, float]], rate: float) -> float:
    """PSNR at ``rate`` by linear interpolation in ``log(rate)``; NaN outside the curve."""
    for (r0, p0, *_), (r1, p1, *_) in zip(curve, curve[1:]):
        if r0 <= rate <= r1 and r1 > r0:
            w = (math.log(rate) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return p0 + w * (p1 - p0)
    return float("nan")


def j2k_level_for_rate(ic, vol: np.ndarray, bpv: float) -> float:
    """The J2K quality level (dB, 0.25 steps) whose rate on every 8th slice is closest to
    ``bpv`` (bisection: rate grows with the level)."""
    sub = vol[::8]

    def rate(lv: float) -> float:
        return sum(len(b) for b in _j2k(ic, sub, lv)) * 8 / sub.size

    lo, hi = 15.0, 110.0
    while hi - lo > 0.25:
        mid = (lo + hi) / 2
        if rate(mid) < bpv:
            lo = mid
        else:
            hi = mid
    return lo if abs(rate(lo) - bpv) <= abs(rate(hi) - bpv) else hi


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


def _best_interleaved(fns: dict, repeat: int) -> tuple[dict, dict, dict]:
    """Best-of-``repeat`` wall and CPU seconds of each function, the functions run in turn in
    every round (so a change in the machine's load hits all of them alike), and their last
    outputs: ``(wall, cpu, outputs)``, dicts keyed like ``fns``."""
    wall = {k: math.inf for k in fns}
    cpu = {k: math.inf for k in fns}
    outs: dict = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            outs[k] = fn()
            cpu[k] = min(cpu[k], time.process_time() - c)
            wall[k] = min(wall[k], time.perf_counter() - t)
    return wall, cpu, outs


def htj2k_curve(ic, vol: np.ndarray) -> list[tuple[float, float]]:
    """``[(bpv, psnr)]`` of slice-by-slice HTJ2K (OpenJPH) over the quantisation steps of
    :data:`~wdrcodec.evaluate.HTJ2K_STEPS`, sorted by rate; empty without HTJ2K."""
    from wdrcodec.evaluate import HTJ2K_STEPS

    if not _has(ic, "HTJ2K"):
        return []
    pts = []
    for q in HTJ2K_STEPS:
        blobs = [ic.htj2k_encode(np.ascontiguousarray(s), level=q) for s in vol]
        dec = np.stack([ic.htj2k_decode(b) for b in blobs]).reshape(vol.shape)
        pts.append((sum(len(b) for b in blobs) * 8 / vol.size, _psnr(vol, dec)))
    return sorted(pts)


def rd_table(
    ic,
    rates: list[float],
    has_sperr: bool,
    plots: Path | None = None,
    strip_bpv: float = STRIP_BPV,
) -> list[dict]:
    """Rate-distortion of WDR 3D/2D/MCPD, J2K and HTJ2K (interpolated at WDR's rate) and
    SPERR-3D on the two built-in real volumes; with ``plots`` (a folder) the pictures of
    :func:`picture_paths` there: PSNR/SSIM curves and a slice strip at ``strip_bpv``."""
    print("Rate-distortion, PSNR at the data range (dB); J2K, HTJ2K interpolated at WDR's rate")
    print(
        f"{'volume':<22}{'bpv':>6}{'WDR-3D':>8}{'ctx':>7}{'WDR-2D':>8}{'MCPD':>8}{'J2K':>8}"
        f"{'HTJ2K':>8}{'SPERR':>8}{'(bpv)':>7}{'d J2K':>7}{'d HTJ2K':>8}{'d SPERR':>8}"
        f"{'ctx-SPERR':>10}"
    )
    out = []
    for stem, load in RD_VOLUMES:
        sample = load()
        vol = sample.array
        curve = j2k_curve(ic, vol, range(30, 100, 2))
        hcurve = htj2k_curve(ic, vol)
        pics: dict[str, list] = {"WDR-3D": [], "WDR-3D ctx": [], "WDR-2D": [], "WDR-MCPD": []}
        for bpv in rates:
            row = {"volume": sample.name, "target_bpv": bpv}
            for mode in ("3d", "2d", "mcpd"):
                blob = encode(vol, bpv=bpv, mode=mode)
                dec = decode(blob)
                row[f"wdr_{mode}"] = _psnr(vol, dec)
                row[f"wdr_{mode}_bpv"] = len(blob) * 8 / vol.size
                if plots is not None:
                    key = {"3d": "WDR-3D", "2d": "WDR-2D", "mcpd": "WDR-MCPD"}[mode]
                    pics[key].append((row[f"wdr_{mode}_bpv"], row[f"wdr_{mode}"], _ssim(vol, dec)))
            cblob = encode(vol, bpv=bpv, coder="ctx")
            cdec = decode(cblob)
            row["wdr_ctx"] = _psnr(vol, cdec)
            if plots is not None:
                pics["WDR-3D ctx"].append(
                    (len(cblob) * 8 / vol.size, row["wdr_ctx"], _ssim(vol, cdec))
                )
            row["j2k"] = interpolate(curve, row["wdr_3d_bpv"])
            row["htj2k"] = interpolate(hcurve, row["wdr_3d_bpv"])
            nan = float("nan")
            row["sperr_bpv"], row["sperr"] = sperr_point(ic, vol, bpv) if has_sperr else (nan, nan)
            out.append(row)
            print(
                f"{sample.name:<22}{row['wdr_3d_bpv']:>6.3f}{row['wdr_3d']:>8.2f}"
                f"{row['wdr_ctx']:>7.2f}{row['wdr_2d']:>8.2f}{row['wdr_mcpd']:>8.2f}"
                f"{row['j2k']:>8.2f}{row['htj2k']:>8.2f}{row['sperr']:>8.2f}"
                f"{row['sperr_bpv']:>7.3f}{row['wdr_3d'] - row['j2k']:>+7.2f}"
                f"{row['wdr_3d'] - row['htj2k']:>+8.2f}{row['wdr_3d'] - row['sperr']:>+8.2f}"
                f"{row['wdr_ctx'] - row['sperr']:>+10.2f}"
            )
        if plots is not None:
            for path in _pictures(vol, pics, rates, Path(plots), stem, sample.name, strip_bpv):
                print(f"  wrote {path}")
    return out


def _pictures(
    vol: np.ndarray,
    wdr: dict[str, list],
    rates: list[float],
    plots: Path,
    stem: str,
    title: str,
    strip_bpv: float,
) -> list[Path]:
    """``rd_<stem>.png`` (the WDR curves ``wdr`` and the anchors of
    :func:`~wdrcodec.evaluate.anchor_curves`) and ``strip_<stem>.png`` (WDR-3D at
    ``strip_bpv``) in ``plots``."""
    from wdrcodec.evaluate import anchor_curves, write_strip
    from wdrcodec.plots import rd_figure

    anchors, note = anchor_curves(vol, (0, 1, 2), rates)
    head = "\n".join(t for t in (title, note) if t)
    return [
        rd_figure({**wdr, **anchors}, plots / f"rd_{stem}.png", head),
        write_strip(vol, plots / f"strip_{stem}.png", strip_bpv, title=f"WDR-3D, {title}"),
    ]


def speed_table(ic, volumes: dict, rates: list[float], has_sperr: bool, repeat: int) -> list[dict]:
    """Encode/decode speed and PSNR of WDR-3D, J2K and SPERR-3D at equal rate (WDR is encoded at
    J2K's actual rate) on each speed volume."""
    print(
        "\nSpeed at equal rate (MB/s of input, single thread, best of "
        f"{repeat}); WDR encoded at J2K's actual rate"
    )
    print(
        f"{'volume':<8}{'bpv':>7}{'PSNR WDR':>9}{'J2K':>7}{'SPERR':>7}{'dJ2K':>6}"
        f"{'enc WDR':>8}{'J2K':>6}{'SPERR':>6}{'dec WDR':>8}{'J2K':>6}{'SPERR':>6}"
        f"{'enc/J2K':>8}{'dec/J2K':>8}{'dec/SPERR':>10}{'dec/J2K cpu':>12}"
    )
    out = []
    for name, vol in volumes.items():
        mb = vol.nbytes / 1e6
        for bpv in rates:
            lv = j2k_level_for_rate(ic, vol, bpv)
            tje, jb = _best_time(partial(_j2k, ic, vol, lv), repeat)
            rate = sum(len(b) for b in jb) * 8 / vol.size
            te, blob = _best_time(partial(encode, vol, bpv=rate), repeat)
            # decode: WDR and J2K in turn, so the machine's load hits both alike
            wall, cpu, outs = _best_interleaved(
                {"j2k": partial(_j2k_decode, ic, jb, vol.shape), "wdr": partial(decode, blob)},
                repeat,
            )
            tjd, td, jdec, wdec = wall["j2k"], wall["wdr"], outs["j2k"], outs["wdr"]
            row = {
                "volume": name,
                "target_bpv": bpv,
                "bpv": rate,
                "wdr_bpv": len(blob) * 8 / vol.size,
                "wdr_psnr": _psnr(vol, wdec),
                "j2k_psnr": _psnr(vol, jdec),
                "wdr_encode_mbs": mb / te,
                "wdr_decode_mbs": mb / td,
                "j2k_encode_mbs": mb / tje,
                "j2k_decode_mbs": mb / tjd,
                "wdr_decode_cpu_s": cpu["wdr"],
                "j2k_decode_cpu_s": cpu["j2k"],
            }
            if has_sperr:
                f64 = vol.astype(np.float64)
                tse, sb = _best_time(
                    partial(ic.sperr_encode, f64, level=rate, mode="bpp", numthreads=1), repeat
                )
                tsd, sdec = _best_time(partial(ic.sperr_decode, sb, numthreads=1), repeat)
                row.update(
                    sperr_bpv=len(sb) * 8 / vol.size,
                    sperr_psnr=_psnr(vol, _to_dtype(sdec.reshape(vol.shape), vol)),
                    sperr_encode_mbs=mb / tse,
                    sperr_decode_mbs=mb / tsd,
                )
            else:
                row.update(sperr_bpv=math.nan, sperr_psnr=math.nan)
                row.update(sperr_encode_mbs=math.nan, sperr_decode_mbs=math.nan)
            out.append(row)
            print(
                f"{name:<8}{rate:>7.3f}{row['wdr_psnr']:>9.2f}{row['j2k_psnr']:>7.2f}"
                f"{row['sperr_psnr']:>7.2f}{row['wdr_psnr'] - row['j2k_psnr']:>+6.2f}"
                f"{row['wdr_encode_mbs']:>8.1f}{row['j2k_encode_mbs']:>6.1f}"
                f"{row['sperr_encode_mbs']:>6.1f}{row['wdr_decode_mbs']:>8.1f}"
                f"{row['j2k_decode_mbs']:>6.1f}{row['sperr_decode_mbs']:>6.1f}"
                f"{row['wdr_encode_mbs'] / row['j2k_encode_mbs']:>8.2f}"
                f"{row['wdr_decode_mbs'] / row['j2k_decode_mbs']:>8.2f}"
                f"{row['wdr_decode_mbs'] / row['sperr_decode_mbs']:>10.2f}"
                f"{row['j2k_decode_cpu_s'] / row['wdr_decode_cpu_s']:>12.2f}"
            )
    return out


def lossless_table(ic, volumes: dict) -> list[dict]:
    """Lossless compression ratios (original bytes / compressed bytes), slice by slice for the
    2D anchors."""
    anchors = {
        "J2K": lambda s: ic.jpeg2k_encode(s, level=0, reversible=True, numthreads=1),
    }
    if _has(ic, "JPEGXL"):
        anchors["JPEG-XL e7"] = lambda s: ic.jpegxl_encode(s, lossless=True, effort=7)
    if _has(ic, "JPEGLS"):
        anchors["JPEG-LS"] = lambda s: ic.jpegls_encode(s)
    if _has(ic, "HTJ2K"):
        anchors["HTJ2K"] = lambda s: ic.htj2k_encode(s, reversible=True)
    print("\nLossless compression ratio (original bytes / compressed bytes)")
    print(
        f"{'volume':<22}{'WDR-3D':>8}{'ctx':>8}"
        + "".join(f"{k:>12}" for k in anchors)
        + f"{'WDR/best':>10}{'ctx/best':>10}"
    )
    out = []
    for name, vol in volumes.items():
        blob = encode(vol, lossless=True)
        if not np.array_equal(decode(blob), vol):
            raise AssertionError("lossless round trip is not exact")  # pragma: no cover
        cblob = encode(vol, lossless=True, coder="ctx")
        if not np.array_equal(decode(cblob), vol):
            raise AssertionError("lossless round trip is not exact")  # pragma: no cover
        row = {"volume": name, "wdr": vol.nbytes / len(blob), "wdr_ctx": vol.nbytes / len(cblob)}
        # the 2D anchors take unsigned data: a non-negative int16 volume is the same as uint16
        src = vol.astype(np.uint16) if vol.dtype == np.int16 and vol.min() >= 0 else vol
        for k, fn in anchors.items():
            size = sum(len(fn(np.ascontiguousarray(s))) for s in src)
            row[k] = vol.nbytes / size
        best = max(row[k] for k in anchors)
        row["wdr_over_best"] = row["wdr"] / best
        row["ctx_over_best"] = row["wdr_ctx"] / best
        out.append(row)
        print(
            f"{name:<22}{row['wdr']:>8.3f}{row['wdr_ctx']:>8.3f}"
            + "".join(f"{row[k]:>12.3f}" for k in anchors)
            + f"{row['wdr_over_best']:>10.3f}{row['ctx_over_best']:>10.3f}"
        )
    return out


def context_table(volumes: dict) -> list[dict]:
    """Ideal per-context costs of lossless bit-plane coding (:mod:`wdrcodec.contexts`): what
    significance/refinement/sign contexts from neighbours and parents could gain."""
    from dataclasses import asdict

    from wdrcodec.contexts import context_costs

    print("\nContext-model potential, lossless (bits/voxel; ideal static per-context entropy)")
    print(
        f"{'volume':<22}{'.wdr':>7}{'sig':>7}{'sig|nb':>8}{'sig|cl,nb,par':>14}{'ref|age':>8}"
        f"{'ref|age,nb':>11}{'sign':>6}{'sign|nb':>8}{'best':>7}"
    )
    out = []
    for name, vol in volumes.items():
        c = context_costs(vol)
        row = {"volume": name, **asdict(c), "best_bpv": c.best_bpv}
        out.append(row)
        print(
            f"{name:<22}{c.wdr_bpv:>7.3f}{c.significance_plain:>7.3f}"
            f"{c.significance_neighbours:>8.3f}{c.significance_class_neighbours_parent:>14.3f}"
            f"{c.refinement_age:>8.3f}{c.refinement_age_neighbours:>11.3f}{c.sign_plain:>6.3f}"
            f"{c.sign_neighbours:>8.3f}{c.best_bpv:>7.3f}"
        )
    return out


def startup(repeat: int = 3) -> dict:
    """Wall time of one ``wdrcodec encode`` CLI call on dipy's S0 (10 x 128 x 128) against the
    time of the coding itself (in this process, kernels loaded)."""
    vol = dipy_s0().array
    with tempfile.TemporaryDirectory(prefix="wdrcodec-bench-") as tmp:
        src, dst = Path(tmp) / "s0.npy", Path(tmp) / "s0.wdr"
        np.save(src, vol)
        cmd = [sys.executable, "-m", "wdrcodec.cli", "encode", str(src), str(dst), "--bpv", "1"]
        walls = []
        for _ in range(repeat):
            t = time.perf_counter()
            subprocess.run([*cmd, "--quiet"], check=True)
            walls.append(time.perf_counter() - t)
    coding, _ = _best_time(lambda: encode(vol, bpv=1.0), repeat)
    res = {
        "cli_wall_s_best": min(walls),
        "cli_wall_s_median": float(np.median(walls)),
        "coding_s": coding,
        "shape": list(vol.shape),
    }
    print(
        f"\nStart-up: `wdrcodec encode` of a {vol.shape} uint16 .npy: wall {min(walls):.2f} s "
        f"best, {np.median(walls):.2f} s median of {repeat} (coding alone {coding * 1e3:.1f} ms)"
    )
    return res


def speed_volumes(quick: bool = False) -> dict[str, np.ndarray]:
    """The three speed volumes (64 x 256 x 256 uint16; 16 x 256 x 256 with ``quick``)."""
    shape = (16, 256, 256) if quick else (64, 256, 256)
    return {
        "smooth": speed_volume(shape),
        "noisy": noisy_volume(shape),
        "real": real_tiled_volume(shape),
    }


def run_speed(quick: bool = False, repeat: int = 5, json_path: Path | None = None) -> int:
    """Only the speed table (every rate of :data:`RATES`, the three speed volumes, decode timed
    interleaved with J2K, best of ``repeat``), for checking speed work without the whole
    benchmark; optionally its rows as JSON. Returns 0."""
    ic = _imagecodecs()
    ensure_compiled()
    rows = speed_table(ic, speed_volumes(quick), RATES, _has(ic, "SPERR"), repeat)
    if json_path is not None:
        from medshared.io import atomic_write_text

        atomic_write_text(json_path, json.dumps(_finite(rows), indent=2))
    return 0


def run_bench(
    quick: bool = False,
    json_path: Path | None = None,
    plots: Path | None = None,
    strip_bpv: float = STRIP_BPV,
    sections: tuple[str, ...] = SECTIONS,
) -> int:
    """Run the benchmark's ``sections`` (of :data:`SECTIONS`), print their tables, optionally
    write JSON and (``plots``, a folder; with the ``rd`` section) the pictures of
    :func:`picture_paths`, the slice strips at ``strip_bpv`` bits/voxel. Returns 0."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        raise WdrError(f"sections must be among {','.join(SECTIONS)}, got {','.join(sections)}")
    ic = _imagecodecs()
    has_sperr = _has(ic, "SPERR")
    ensure_compiled()
    rates = [0.5, 1.0] if quick else RATES
    volumes = speed_volumes(quick) if {"speed", "lossless"} & set(sections) else {}
    results: dict = {}
    if "rd" in sections:
        results["rd"] = rd_table(ic, rates, has_sperr, plots, strip_bpv)
    if "speed" in sections:
        results["speed"] = speed_table(ic, volumes, rates, has_sperr, repeat=2 if quick else 3)
    real = {}
    if {"lossless", "contexts"} & set(sections):
        real = {
            "dipy S0_10slices": dipy_s0().array,
            "nibabel example4d[0]": nibabel_example4d().array,
        }
    if "lossless" in sections:
        results["lossless"] = lossless_table(ic, {**real, **volumes})
    if "contexts" in sections:
        results["contexts"] = context_table(real)
    if "startup" in sections:
        results["startup"] = startup(2 if quick else 3)
    if "threads" in sections:
        from wdrcodec.parallel_bench import thread_table  # 1 -> N threads on a 4D series

        results["threads"] = thread_table(quick)
    if json_path is not None:
        from medshared.io import atomic_write_text

        atomic_write_text(json_path, json.dumps(_finite(results), indent=2))
    return 0


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
