"""The codec's options: one frozen dataclass per job, every default declared once.

:class:`EncodeConfig` is what :func:`wdrcodec.encode` takes and what ``wdrcodec encode`` / ``eval``
build their flags from (``--bpv``, ``--mode``, ...: field names with ``-``); :class:`DecodeConfig`
holds the decoder's resource limits (``wdrcodec decode --max-voxels/--max-memory``). Each field's
``metadata`` carries its ``--help`` text (with unit) and the bounds checked at parse time.

>>> EncodeConfig(bpv=1.0).mode
'3d'
>>> EncodeConfig(bpv=-1.0)
Traceback (most recent call last):
...
wdrcodec.errors.WdrError: --bpv: must be a positive number of bits per voxel, got -1.0
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from wdrcodec.errors import WdrError

Mode = Literal["3d", "2d", "mcpd"]
Norm = Literal["std", "range", "none"]
PsnrRange = Literal["ref", "dtype"]
Coder = Literal["wdr", "ctx"]
Background = Literal["auto", "off", "on"]

MODES: tuple[str, ...] = ("3d", "2d", "mcpd")
NORMS: tuple[str, ...] = ("std", "range", "none")
PSNR_RANGES: tuple[str, ...] = ("ref", "dtype")
CODERS: tuple[str, ...] = ("wdr", "ctx")
BACKGROUNDS: tuple[str, ...] = ("auto", "off", "on")
MAX_LEVELS = 12
# Parse-time bounds (the shared flag parser checks closed intervals, so the open lower bound
# "> 0" of a rate/step is a tiny positive minimum; ``gt`` keeps the exact "> 0" check).
MIN_BPV, MAX_BPV = 1e-12, 64.0  # bits/voxel: no stored sample is wider than 64 bits
MIN_PSNR, MAX_PSNR = 1e-12, 1000.0  # dB
MIN_FLOAT_STEP, MAX_FLOAT_STEP = 1e-30, 1e38  # input units (float32 spans ~1e-38..3.4e38)
MIN_MEMORY_GIB, MAX_MEMORY_GIB = 1e-6, 1e6  # GiB
MAX_THREADS = 1024
BUILTIN_WAVELET = "cdf97"  # the built-in lifting CDF 9/7 (wdrcodec.lifting)
CLI_THREADS = 0  # the command line's default --threads: every core (the library's is 1)
THREADS_HELP = (
    "worker threads inside one file: the volumes of a 4D series and the slabs of every "
    "wavelet pass run on them (count; 0: every core this process may use, divided by --jobs; "
    "the output is the same for any count)"
)


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class EncodeConfig:
    """Options of one encode (see :func:`wdrcodec.encode`).

    Exactly one of ``bpv``, ``psnr`` or ``lossless`` selects the rate, except that ``bpv`` may be
    combined with ``lossless`` (a lossy prefix of the lossless stream).
    """

    bpv: float | None = field(
        default=None,
        metadata={
            "help": "target rate in bits/voxel; the file (header included) is "
            "floor(bpv * voxels / 8) bytes",
            "gt": 0.0,
            "min": MIN_BPV,
            "max": MAX_BPV,
        },
    )
    psnr: float | None = field(
        default=None,
        metadata={
            "help": "shortest stream whose decode reaches this PSNR (dB)",
            "gt": 0.0,
            "min": MIN_PSNR,
            "max": MAX_PSNR,
        },
    )
    lossless: bool = field(
        default=False,
        metadata={
            "help": "reversible integer LeGall 5/3 transform; float input is quantised "
            "first and the largest error is reported"
        },
    )
    psnr_range: PsnrRange = field(
        default="ref",
        metadata={
            "help": "PSNR peak for --psnr: the data range max-min (ref) or the dtype range (dtype)"
        },
    )
    mode: Mode = field(
        default="3d",
        metadata={
            "help": "3d: whole volume; 2d: slice by slice; mcpd: the paper's MCPD "
            "grouping (3D group + 2D slices)"
        },
    )
    levels: int = field(
        default=5,
        metadata={
            "help": "maximum wavelet decomposition levels per axis (count; fewer on short axes)",
            "min": 1,
            "max": MAX_LEVELS,
        },
    )
    packet: bool = field(
        default=False, metadata={"help": "wavelet-packet decomposition of the slice axis"}
    )
    auto_packet: bool = field(
        default=False,
        metadata={
            "help": "choose the dyadic or the packet decomposition per file from a "
            "rate-distortion model of both (wdrcodec.choose; the encode takes about 1.7-3x as "
            "long)"
        },
    )
    mcpd_threshold: float = field(
        default=0.5,
        metadata={
            "help": "MCPD threshold: slices whose mean co-located difference is at most "
            "this go into the 3D group (units of --mcpd-norm)",
            "min": 0.0,
        },
    )
    mcpd_norm: Norm = field(
        default="std",
        metadata={
            "help": "intensity normalisation before MCPD: std (divide by the volume's "
            "SD), range (0-1 min-max) or none (raw stored units)"
        },
    )
    coder: Coder = field(
        default="wdr",
        metadata={
            "help": "bit-plane coder: wdr (run-length gaps, the paper's) or ctx (per-coefficient "
            "significance with neighbour contexts; smaller lossless files)"
        },
    )
    float_step: float | None = field(
        default=None,
        metadata={
            "help": "quantisation step of float input (input units; none: the robust "
            "1st-99th percentile range / 65535)",
            "gt": 0.0,
            "min": MIN_FLOAT_STEP,
            "max": MAX_FLOAT_STEP,
        },
    )
    wavelet: str = field(
        default=BUILTIN_WAVELET,
        metadata={
            "help": "wavelet of the lossy mode: cdf97 (built-in lifting CDF 9/7) or a PyWavelets "
            "biorthogonal wavelet, bior1.1 ... bior6.8 or rbio1.1 ... rbio6.8 (needs "
            "wdrcodec[wavelets]; the lossless mode always uses the integer LeGall 5/3)"
        },
    )
    background: Background = field(
        default="auto",
        metadata={
            "help": "shape-adaptive mode for masked volumes (--mode 3d, built-in wavelets): the "
            "voxels equal to the volume's minimum are a background, coded as a binary mask, and "
            "the wavelets transform only the object; auto: on for --lossless files when at "
            "least 20%% of the voxels equal the minimum and the coded mask costs at most 0.125 "
            "bits/voxel (and, with --bpv, at most a quarter of the file), off for lossy files "
            "(--bpv/--psnr without --lossless: the mode gains 0.3-3.8 dB there but decodes 1.7-3.2x "
            "slower); on: whenever some voxel equals the minimum, lossy files too; off: never"
        },
    )
    threads: int = field(default=1, metadata={"help": THREADS_HELP, "min": 0, "max": MAX_THREADS})

    def __post_init__(self) -> None:
        for f in fields(self):
            check_value(f.name, getattr(self, f.name), f.metadata)
        if self.background == "on" and self.mode != "3d":
            raise WdrError(
                f"--background on and --mode {self.mode}: the shape-adaptive mode codes whole "
                "volumes; use --mode 3d or --background auto/off"
            )
        if self.background == "on" and self.wavelet != BUILTIN_WAVELET:
            raise WdrError(
                f"--background on and --wavelet {self.wavelet}: the shape-adaptive mode uses the "
                "built-in CDF 9/7; drop --wavelet or use --background auto/off"
            )
        if self.lossless and self.wavelet != BUILTIN_WAVELET:
            raise WdrError(
                f"--wavelet {self.wavelet} and --lossless: the lossless mode always uses the "
                "integer LeGall 5/3; give --wavelet with --bpv or --psnr"
            )
        if self.auto_packet and self.packet:
            raise WdrError("--auto-packet and --packet: give at most one of them")
        if self.bpv is not None and self.psnr is not None:
            raise WdrError("--bpv and --psnr: give at most one of them")
        if self.psnr is not None and self.lossless:
            raise WdrError("--psnr and --lossless: give at most one of them")
        if self.bpv is None and self.psnr is None and not self.lossless:
            raise WdrError("give a rate (--bpv), a quality (--psnr) or --lossless")


DEFAULT_MAX_VOXELS = 1 << 28


@dataclass(frozen=True)
class DecodeConfig:
    """Resource limits of one decode; they bound what a (possibly forged) header may allocate."""

    bpv: float | None = field(
        default=None,
        metadata={
            "help": "decode only the first floor(bpv * voxels / 8) bytes (bits/voxel; "
            "default: the whole file)",
            "gt": 0.0,
            "min": MIN_BPV,
            "max": MAX_BPV,
        },
    )
    max_voxels: int = field(
        default=DEFAULT_MAX_VOXELS,
        metadata={"help": "refuse files whose array has more voxels than this (count)", "min": 1},
    )
    max_memory: float | None = field(
        default=None,
        metadata={
            "help": "refuse files whose decode needs more than this much memory (GiB; "
            "default: the memory available now)",
            "gt": 0.0,
            "min": MIN_MEMORY_GIB,
            "max": MAX_MEMORY_GIB,
        },
    )
    threads: int = field(default=1, metadata={"help": THREADS_HELP, "min": 0, "max": MAX_THREADS})

    def __post_init__(self) -> None:
        for f in fields(self):
            check_value(f.name, getattr(self, f.name), f.metadata)


def check_value(name: str, value: Any, meta: Any) -> None:
    """Check one option against its ``choices``/``gt``/``min``/``max`` metadata.

    Raises :class:`WdrError` naming the command-line option (``--float-step``), so the same
    message serves the CLI and the Python API.
    """
    if value is None or isinstance(value, bool):
        return
    opt = _opt(name)
    if isinstance(value, str):
        if name == "wavelet":
            from wdrcodec.biorthogonal import check_wavelet

            check_wavelet(value)
            return
        allowed = {
            "mode": MODES,
            "mcpd_norm": NORMS,
            "psnr_range": PSNR_RANGES,
            "coder": CODERS,
            "background": BACKGROUNDS,
        }.get(name)
        if allowed is not None and value not in allowed:
            raise WdrError(f"{opt}: must be one of {', '.join(allowed)}, got {value!r}")
        return
    if "min" in meta and isinstance(meta["min"], int) and not isinstance(value, int):
        raise WdrError(f"{opt}: must be an integer, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise WdrError(f"{opt}: must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise WdrError(f"{opt}: must be a finite number, got {value!r}")
    if "gt" in meta and not v > meta["gt"]:
        unit = {"bpv": " of bits per voxel", "psnr": " of dB"}.get(name, "")
        raise WdrError(f"{opt}: must be a positive number{unit}, got {value!r}")
    if "min" in meta and v < meta["min"]:
        raise WdrError(f"{opt}: must be at least {meta['min']}, got {value!r}")
    if "max" in meta and v > meta["max"]:
        raise WdrError(f"{opt}: must be at most {meta['max']}, got {value!r}")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int, jobs: int = 1) -> int:
    """Worker threads for one file: ``threads`` if positive, else (0) the cores shared out among
    ``jobs`` processes, ``cores // jobs`` and at least 1, so jobs x threads never oversubscribes
    the cores."""
    if threads > 0:
        return int(threads)
    return max(1, available_cores() // max(1, int(jobs)))
