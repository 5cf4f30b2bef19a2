"""``perfdecon maps`` as a library function: read a series, choose the AIF, run the pipeline,
write the map set and ``summary.json``.

:func:`run_maps` validates every output before any work (an output that is an input, a symlink,
a folder or a special file is refused; see :mod:`medshared.io.outputs`) and writes the whole set
through :func:`medshared.io.outputs.output_set`: a failure or Ctrl-C/SIGTERM part-way leaves no
partial set and the previous contents of the folder untouched.

Axes: the pipeline works in ``(Z, Y, X[, T])`` (:mod:`perfdecon.io` transposes on reading and
writing); the maps are written in the input's voxel grid and affine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfdecon import __version__
from perfdecon.config import DT_RANGE, MAX_FRAMES, MIN_FRAMES, MapsConfig
from perfdecon.errors import PerfdeconError

MAP_NAMES = ("cbf", "cbv", "mtt", "tmax", "ttp", "rcbf")
"""Float maps written as ``<name>.nii.gz``."""
MASK_NAMES = ("core", "penumbra")
"""uint8 masks written as ``<name>.nii.gz``."""
FIGURES = ("aif.png", "overview.png")
"""The PNG figures (skipped with ``figures=False``: matplotlib is then never imported)."""
OUTPUT_FILES = (
    *(f"{n}.nii.gz" for n in MAP_NAMES + MASK_NAMES),
    "aif.txt",
    *FIGURES,
    "summary.json",
)
"""Every file of one case's result (written as one set)."""
UNITS = {
    "cbf": "mL/100g/min",
    "cbv": "mL/100g",
    "mtt": "s",
    "tmax": "s",
    "ttp": "s (from first frame)",
    "rcbf": "1 (CBF / reference)",
    "core": "1 = rCBF < threshold",
    "penumbra": "1 = Tmax > threshold outside the core",
}
AIF_KINDS = ("auto", "mask", "file", "model")
LEARNED_AIF_NOTE = (
    "absolute CBF, CBV and MTT are not calibrated with a learned AIF: its scale is arbitrary "
    "(rescaled so its peak matches the brightest voxels); rCBF, the core and Tmax do not depend "
    "on the scale"
)


@dataclass(frozen=True)
class AifChoice:
    """Where the AIF comes from.

    Attributes
    ----------
    kind:
        ``"auto"`` (automatic selection), ``"mask"`` (mean of a 3D NIfTI mask's voxels),
        ``"file"`` (text file, one value per frame) or ``"model"`` (a learned-AIF export).
    path:
        The mask, file or model (None for ``"auto"``).
    """

    kind: str = "auto"
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in AIF_KINDS:
            raise PerfdeconError(f"AIF kind must be one of {', '.join(AIF_KINDS)}: {self.kind!r}")
        if (self.kind == "auto") != (self.path is None):
            raise PerfdeconError(f"AIF kind {self.kind!r} needs a path exactly when not 'auto'")


@dataclass
class MapsRun:
    """Result of :func:`run_maps`.

    Attributes
    ----------
    out:
        The output folder.
    summary:
        The content of ``summary.json``.
    result:
        The :class:`perfdecon.pipeline.CaseResult` (maps ``(Z, Y, X)``).
    warnings:
        Warnings raised on the way (e.g. a poor AIF accepted with ``force``).
    """

    out: Path
    summary: dict[str, Any]
    result: Any
    warnings: list[str] = field(default_factory=list)


def check_dt(dt: float | None, source: str) -> float:
    """The frame interval (s), refused when missing or outside :data:`DT_RANGE`.

    Parameters
    ----------
    dt:
        Frame interval in seconds (None when the header has none).
    source:
        Where it came from, named in the message (``"--dt"`` or ``"FILE header pixdim[4]"``).
    """
    lo, hi = DT_RANGE
    if dt is None or not math.isfinite(dt) or dt <= 0:
        raise PerfdeconError(
            f"{source} gives no valid frame interval ({dt!r}: zero, negative or NaN); "
            "pass --dt SECONDS"
        )
    if not lo <= dt <= hi:
        raise PerfdeconError(
            f"{source}: frame interval {dt:g} s is outside the plausible {lo:g}-{hi:g} s "
            "(a header in ms without its time unit?); pass --dt SECONDS"
        )
    return float(dt)


def output_inputs(series: Path, mask: Path | None, aif: AifChoice) -> list[Path]:
    """Every file a run reads (none of them may be overwritten)."""
    return [p for p in (series, mask, aif.path) if p is not None]


def check_outputs(out: Path, inputs: list[Path]) -> Path:
    """Refuse an unsafe ``--out`` before any work (see :mod:`medshared.io.outputs`)."""
    from medshared.io.outputs import check_output_folder

    return check_output_folder(out, OUTPUT_FILES, inputs, what="--out")


def _model_aif(path: Path, conc: np.ndarray, brain: np.ndarray):
    from perfdecon.aif import AifResult
    from perfdecon.predict import predict_aif

    curve = np.asarray(
        predict_aif(path, conc, brain_mask=brain, allow_nonpositive_area=True), np.float64
    ).ravel()
    return AifResult(curve=curve, source="model", details={"model": str(path)})


def _location(s: Any, loc: tuple[int, int, int] | None) -> dict[str, Any]:
    if loc is None:
        return {"location_zyx": None, "location_xyz": None, "location_mm": None}
    xyz = list(loc[::-1])
    return {"location_zyx": list(loc), "location_xyz": xyz,
            "location_mm": (s.affine @ np.array([*xyz, 1.0]))[:3].tolist()}


def _vof_summary(s: Any, res: Any, dt: float) -> dict[str, Any] | None:
    if res.vof is None:
        return None
    return {
        **_location(s, res.vof.location),
        "n_voxels": int(len(res.vof.voxels)),
        "area_ratio_vof_to_aif": res.aif.details.get("vof_area_ratio"),
        "aif_scale_factor": res.aif.details.get("vof_factor"),
        "curve": [float(v) for v in res.vof.curve],
    }


def _summary(
    s: Any, dt: float, cfg: MapsConfig, res: Any, aif: AifChoice, t0: float, t_pre: float,
    dt_source: str,
) -> dict[str, Any]:
    from perfdecon.figures import mismatch

    vox_ml = float(np.prod(s.spacing)) / 1000.0
    loc = res.aif.location
    loc_xyz = list(loc[::-1]) if loc is not None else None
    summary: dict[str, Any] = {
        "tool": "perfdecon",
        "version": __version__,
        "input": {
            "path": str(s.path),
            "shape_xyzt": [*s.data.shape[2::-1], s.data.shape[3]],
            "spacing_xyz_mm": list(s.spacing[::-1]),
            "dt": dt,
            "dt_source": dt_source,
        },
        "shape_xyzt": [*s.data.shape[2::-1], s.data.shape[3]],
        "dt_s": dt,
        "config": cfg.as_dict(),
        "effective": cfg.effective(),
        "aif": {
            "source": res.aif.source,
            "choice": aif.kind,
            "path": str(aif.path) if aif.path is not None else None,
            "location_zyx": list(loc) if loc is not None else None,
            "location_xyz": loc_xyz,
            "location_mm": (s.affine @ np.array([*loc_xyz, 1.0]))[:3].tolist()
            if loc_xyz is not None
            else None,
            "n_voxels": int(len(res.aif.voxels)),
            "quality": float(res.aif.quality),
            "quality_threshold": cfg.min_aif_quality,
            "peak": float(np.max(res.aif.curve)),
            "area": float(np.trapezoid(res.aif.curve, dx=dt)),
        },
        "vof": _vof_summary(s, res, dt),
        "reference": res.reference,
        "calibrated": res.aif.source != "model",
        "units": UNITS,
        "core_volume_ml": float(res.core.sum() * vox_ml),
        "penumbra_volume_ml": float(res.penumbra.sum() * vox_ml),
        "mismatch_ratio": mismatch(float(res.core.sum() * vox_ml),
                                   float(res.penumbra.sum() * vox_ml)),
        "brain_volume_ml": float(res.brain_mask.sum() * vox_ml),
        "warnings": list(res.warnings),
        "runtime_s": {
            "read_and_concentration": round(t_pre, 4),
            **{k: round(v, 4) for k, v in res.timings.items() if k != "preprocess"},
            "wall_incl_io": round(time.perf_counter() - t0, 4),
        },
        "axes_note": "maps are written in the input's NIfTI voxel order (x, y, z) and affine",
    }
    if res.aif.source == "model":
        summary["calibration_note"] = LEARNED_AIF_NOTE
    return summary


def run_maps(
    series: str | Path,
    out: str | Path,
    *,
    config: MapsConfig | None = None,
    aif: AifChoice | None = None,
    mask: str | Path | None = None,
    dt: float | None = None,
    force: bool = False,
    figures: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> MapsRun:
    """Perfusion maps of one 4D series, written to ``out`` as one set.

    Parameters
    ----------
    series:
        4D CT perfusion (HU) or DSC-MR series: NIfTI ``(X, Y, Z, T)`` or a DICOM folder (read by
        :func:`medshared.io.read_image`, frames grouped by time).
    out:
        Output folder (created; files of :data:`OUTPUT_FILES` in it are replaced as a whole).
    config:
        Pipeline settings (default :class:`~perfdecon.config.MapsConfig`).
    aif:
        AIF source (default automatic).
    mask:
        Optional 3D NIfTI brain mask (default: automatic).
    dt:
        Frame interval in s (default: the header's pixdim[4], in seconds).
    force:
        Accept an AIF below ``config.min_aif_quality`` (with a warning).
    figures:
        Write ``aif.png`` and ``overview.png`` (matplotlib); False skips them (figures of an
        earlier run in ``out`` are then left as they were).
    on_stage:
        Called with the name of each stage as it starts (``"read"``, ``"concentration"``,
        ``"aif"``, ``"maps"``, ``"write"``), e.g. to drive a progress bar.

    Returns
    -------
    MapsRun

    Raises
    ------
    PerfdeconError
        Bad input or an unsafe output (before any work), with a message naming the file.
    """
    stage = on_stage or (lambda name: None)
    cfg = config or MapsConfig()
    choice = aif or AifChoice()
    series = Path(series)
    mask_p = Path(mask) if mask is not None else None
    out = Path(out)
    inputs = output_inputs(series, mask_p, choice)
    check_outputs(out, inputs)
    if dt is not None:
        check_dt(dt, "--dt")
    for p in inputs[1:]:
        if not p.exists():
            raise PerfdeconError(f"{p}: no such file")
    # heavy imports only once the request is known to be sound
    from medshared.io.outputs import output_set
    from perfdecon.aif import aif_from_file, plot_aif, save_aif_txt
    from perfdecon.figures import plot_overview  # matplotlib itself only when drawing
    from perfdecon.io import read_mask, read_series, write_map
    from perfdecon.jsonout import write_json
    from perfdecon.pipeline import run_case, to_concentration

    t0 = time.perf_counter()
    stage("read")
    s = read_series(series)
    n_t = s.data.shape[-1]
    if n_t < MIN_FRAMES or n_t > MAX_FRAMES:
        raise PerfdeconError(
            f"{series}: {n_t} frames; deconvolution needs {MIN_FRAMES}-{MAX_FRAMES} "
            "(the convolution matrix is T x T and its SVD costs O(T^3))"
        )
    dt_s = check_dt(dt, "--dt") if dt is not None else check_dt(s.dt, f"{series}: pixdim[4]")
    shape = s.data.shape[:3]
    brain = read_mask(mask_p, shape, like=s.image) if mask_p is not None else None
    stage("concentration")
    conc, brain = to_concentration(s.data, cfg, brain)
    t_pre = time.perf_counter() - t0
    stage("aif")
    aif_mask = None
    if choice.kind == "mask":
        aif_arg: Any = "mask"
        aif_mask = read_mask(choice.path, shape, like=s.image)
    elif choice.kind == "file":
        aif_arg = aif_from_file(choice.path, n_t, dt_s)
    elif choice.kind == "model":
        aif_arg = _model_aif(choice.path, conc, brain)
    else:
        aif_arg = "auto"
    stage("maps")
    res = run_case(
        conc,
        dt_s,
        config=cfg,
        aif=aif_arg,
        aif_mask=aif_mask,
        brain_mask=brain,
        is_concentration=True,
        force=force,
    )
    stage("write")
    names = OUTPUT_FILES if figures else tuple(n for n in OUTPUT_FILES if n not in FIGURES)
    with output_set(out, names, inputs, what="--out") as tmp:
        for name in MAP_NAMES:
            write_map(tmp / f"{name}.nii.gz", getattr(res, name).astype(np.float32), s.affine,
                      s.spacing)
        for name in MASK_NAMES:
            write_map(tmp / f"{name}.nii.gz", getattr(res, name).astype(np.uint8), s.affine,
                      s.spacing)
        save_aif_txt(tmp / "aif.txt", res.aif.curve)
        if figures:
            plot_aif(tmp / "aif.png", res.aif, dt_s, vof=res.vof)
            plot_overview(tmp / "overview.png", res, dt_s, float(np.prod(s.spacing)) / 1000.0,
                          affine=s.affine)
        dt_source = "--dt" if dt is not None else "file (NIfTI pixdim[4] / DICOM frame times)"
        summary = _summary(s, dt_s, cfg, res, choice, t0, t_pre, dt_source)
        write_json(tmp / "summary.json", summary)
    return MapsRun(out=out, summary=summary, result=res, warnings=list(res.warnings))


__all__ = [
    "AIF_KINDS",
    "MAP_NAMES",
    "FIGURES",
    "MASK_NAMES",
    "OUTPUT_FILES",
    "UNITS",
    "AifChoice",
    "MapsRun",
    "check_dt",
    "check_outputs",
    "run_maps",
]
