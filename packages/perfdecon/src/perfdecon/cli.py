"""Command line interface ``perfdecon``: parses and prints; the library does the work.

Heavy imports (numpy, torch, matplotlib) happen inside the commands, so ``--help`` is fast.
Every numeric option is checked when it is parsed (before any work); errors go through
:func:`medshared.runner.run_cli` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

from perfdecon import __version__
from perfdecon.config import (
    CORE_THRESHOLD,
    DT_RANGE,
    LAMBDA_REL,
    MATRICES,
    METHODS,
    MIN_AIF_QUALITY,
    MODALITIES,
    PENUMBRA_TMAX,
    REFERENCES,
    SMOOTH_T,
    SMOOTH_XY,
    TMAX_DEFAULT,
    TMAX_METHODS,
)


# --------------------------------------------------------------------------------------------
# parse-time validators
def _number(kind: type, lo: float | None = None, hi: float | None = None, *,
            lo_open: bool = False) -> Callable[[str], float | int]:
    """An argparse ``type`` that parses ``kind`` and checks ``lo <= value <= hi``."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise argparse.ArgumentTypeError(f"{value} must be {'>' if lo_open else '>='} {lo}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{value} must be <= {hi}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _existing_file(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


# --------------------------------------------------------------------------------------------
def _add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=METHODS, default="tikhonov",
                   help="deconvolution method (default: tikhonov)")
    p.add_argument(
        "--matrix",
        choices=MATRICES,
        default="volterra",
        help="discretisation for tikhonov/ssvd; csvd/osvd always use circulant "
        "(default: volterra)",
    )
    p.add_argument("--lambda-rel", type=_number(float, 0, 10, lo_open=True), default=LAMBDA_REL,
                   help=f"Tikhonov lambda relative to s_max, unitless (default: {LAMBDA_REL})")
    p.add_argument("--threshold", type=_number(float, 0, 1, lo_open=True), default=None,
                   help="truncation threshold relative to s_max for ssvd/csvd, unitless "
                   "(default: 0.2 ssvd, 0.1 csvd)")


def _add_maps_parser(sub) -> None:
    p = sub.add_parser(
        "maps",
        help="perfusion maps of one or many 4D NIfTI series (x, y, z, t)",
        description="Perfusion maps (CBF, CBV, MTT, Tmax, TTP, rCBF, core, penumbra). With one "
        "input, --out is the case's folder; with several inputs (files, folders of NIfTI files, "
        "an ISLES18 root with case_N folders), --out holds one folder per case plus "
        "cohort.csv / cohort.json.",
    )
    p.add_argument("series", nargs="+",
                   help="4D CT perfusion (HU) or DSC-MR series (.nii/.nii.gz), folders of them, "
                   "or an ISLES18 root")
    p.add_argument("--out", required=True, help="output folder (created)")
    _add_method_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--aif", choices=["auto"], default="auto",
                   help="automatic AIF selection (default)")
    g.add_argument("--aif-mask", help="3D NIfTI mask of arterial voxels, manual AIF (default: none)")
    g.add_argument("--aif-file", help="text file, one AIF value per frame, concentration units (default: none)")
    g.add_argument("--aif-model", help="learned-AIF model export .safetensors from perfdecon train (default: none)")
    p.add_argument("--mask", help="3D NIfTI brain mask (default: automatic)")
    p.add_argument("--modality", choices=MODALITIES, default="ct", help="(default: ct)")
    lo, hi = DT_RANGE
    p.add_argument("--dt", type=_number(float, lo, hi),
                   help=f"frame interval in s, {lo:g}-{hi:g} (default: header pixdim[4])")
    p.add_argument("--te", type=_number(float, 0, 1, lo_open=True),
                   help="DSC echo time in s (required for --modality dsc; no default)")
    p.add_argument("--smooth-xy", type=_number(float, 0, 20), default=SMOOTH_XY,
                   help=f"in-plane Gaussian sigma in voxels, 0 = off (default: {SMOOTH_XY})")
    p.add_argument("--smooth-t", type=_number(float, 0, 20), default=SMOOTH_T,
                   help=f"temporal Gaussian sigma in frames, 0 = off (default: {SMOOTH_T})")
    p.add_argument("--reference", choices=REFERENCES, default="median",
                   help="rCBF reference region (default: median of the brain)")
    p.add_argument("--no-robust-reference", action="store_true",
                   help="keep non-enhancing voxels and vessels in the rCBF reference "
                   "(default: excluded)")
    p.add_argument("--core-threshold", type=_number(float, 0, 1, lo_open=True),
                   default=CORE_THRESHOLD,
                   help=f"core = rCBF below this, unitless (default: {CORE_THRESHOLD})")
    p.add_argument("--penumbra-tmax", type=_number(float, 0, 60, lo_open=True),
                   default=PENUMBRA_TMAX,
                   help=f"penumbra = Tmax above this, s (default: {PENUMBRA_TMAX})")
    p.add_argument("--tmax", choices=TMAX_METHODS, default=TMAX_DEFAULT,
                   help="Tmax estimator in s: calibrated = the residue onset corrected for the "
                   "regulariser's blur (Tikhonov; onset for the SVD methods), onset = half "
                   "maximum of the rising edge of its first lobe, peak = its peak "
                   f"(default: {TMAX_DEFAULT})")
    p.add_argument("--min-aif-quality", type=_number(float, 0, 1), default=MIN_AIF_QUALITY,
                   help="refuse an AIF whose quality (0-1, R^2 of a gamma fit x SNR term) is "
                   f"below this (default: {MIN_AIF_QUALITY})")
    p.add_argument("--vof-correction", action="store_true",
                   help="scale the AIF so its area matches the automatic venous output "
                   "function's (partial-volume correction of absolute CBF/CBV; default: off)")
    p.add_argument("--force", action="store_true",
                   help="continue with a poor AIF; a warning is printed and saved (default: off)")
    p.add_argument("--no-figures", action="store_true",
                   help="skip aif.png and overview.png (matplotlib is not imported; "
                   "default: written)")
    p.add_argument("--jobs", type=_number(int, 1, 64), default=1,
                   help="cases run in parallel in a cohort, processes (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: shown on a tty)")
    p.set_defaults(func=_cmd_maps)


def build_parser() -> argparse.ArgumentParser:
    """The ``perfdecon`` argument parser (subcommands set ``func``)."""
    parser = argparse.ArgumentParser(
        prog="perfdecon",
        description="Perfusion maps (CBF, CBV, MTT, Tmax, TTP, rCBF, core) by differentiable SVD "
        "deconvolution with automatic, manual, file or learned AIF.",
    )
    parser.add_argument("--version", action="version", version=f"perfdecon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_maps_parser(sub)

    p = sub.add_parser("phantom", help="write a brain-like phantom case as NIfTI + truth")
    p.add_argument("out", help="output folder (created)")
    p.add_argument("--seed", type=_number(int, 0), default=0, help="random seed (default: 0)")
    p.add_argument("--slices", type=_number(int, 1, 64), default=4,
                   help="slices Z, 1-64 (default: 4)")
    p.add_argument("--size", type=_number(int, 32, 1024), default=256,
                   help="in-plane voxels Y = X, 32-1024 (default: 256)")
    p.add_argument("--frames", type=_number(int, 10, 1024), default=50,
                   help="time frames, 10-1024 (default: 50)")
    p.add_argument("--dt", type=_number(float, *DT_RANGE), default=1.0,
                   help=f"frame interval in s, {DT_RANGE[0]:g}-{DT_RANGE[1]:g} (default: 1)")
    p.add_argument("--noise", type=_number(float, 0, 1000), default=2.0,
                   help="Gaussian noise SD in HU (default: 2)")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser("evaluate", help="phantom accuracy table + core segmentation per AIF")
    p.add_argument("--out", help="folder for accuracy.json, segmentation.json, bland_altman.png "
                   "(default: print only)")
    p.add_argument("--cases", type=_number(int, 1, 1000), default=None,
                   help="held-out brain phantom cases, or the first N ISLES18 cases with --isles "
                   "(default: 5 phantoms / every ISLES18 case)")
    p.add_argument("--isles", metavar="ROOT",
                   help="ISLES18 TRAINING folder (case_N with CT_4DPWI and OT): the paper's "
                   "Table 1 protocol on real data instead of phantoms (default: phantoms)")
    p.add_argument("--seed", type=_number(int, 0), default=10_000,
                   help="base seed of the held-out cases (default: 10000)")
    p.add_argument("--checkpoint", type=_existing_file,
                   help="learned-AIF model export (adds the 'learned' column; default: none)")
    p.add_argument("--noise", type=_number(float, 0, 1000), nargs="+", default=[0.0, 2.0, 5.0],
                   help="grid-phantom noise levels in HU (default: 0 2 5)")
    p.add_argument("--slices", type=_number(int, 1, 64), default=4,
                   help="brain phantom slices (default: 4)")
    p.add_argument("--size", type=_number(int, 32, 1024), default=256,
                   help="brain phantom in-plane voxels (default: 256)")
    p.add_argument("--frames", type=_number(int, 10, 1024), default=50,
                   help="brain phantom frames (default: 50)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("bench", help="timing of a whole case vs a per-voxel numpy loop")
    p.add_argument("--slices", type=_number(int, 1, 64), default=8,
                   help="phantom slices (default: 8)")
    p.add_argument("--size", type=_number(int, 32, 1024), default=256,
                   help="phantom in-plane voxels (default: 256)")
    p.add_argument("--frames", type=_number(int, 10, 1024), default=60,
                   help="phantom frames (default: 60)")
    p.add_argument("--loop-voxels", type=_number(int, 1, 10**6), default=3000,
                   help="voxels timed in the numpy loop, then extrapolated (default: 3000)")
    p.add_argument("--threads", type=_number(int, 1, 256),
                   help="torch threads (default: torch's choice)")
    p.add_argument("--repeats", type=_number(int, 1, 100), default=3,
                   help="timing repeats, best is reported (default: 3)")
    p.add_argument("--cohort", type=_number(int, 0, 100), default=0,
                   help="also time `maps` on this many small cases, one process per case vs "
                   "one batch call (default: 0 = off)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("demo", help="accuracy and Dice tables on built-in phantoms")
    p.add_argument("--out", help="folder for the demo's files (default: a temporary folder)")
    p.add_argument("--quick", action="store_true", help="fewer, smaller cases (default: off)")
    p.add_argument("--summary-json", help="write the headline rows as JSON (default: none)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "train", help="train the learned AIF (see perfdecon train --help)", add_help=False
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_train)
    return parser


# --------------------------------------------------------------------------------------------
def _maps_config(a: argparse.Namespace):
    from perfdecon.config import MapsConfig

    return MapsConfig(
        method=a.method,
        matrix=a.matrix,
        lambda_rel=a.lambda_rel,
        threshold=a.threshold,
        modality=a.modality,
        te=a.te,
        smooth_xy=a.smooth_xy,
        smooth_t=a.smooth_t,
        reference=a.reference,
        robust_reference=not a.no_robust_reference,
        core_threshold=a.core_threshold,
        penumbra_tmax=a.penumbra_tmax,
        tmax_method=a.tmax,
        min_aif_quality=a.min_aif_quality,
        vof_correction=a.vof_correction,
    )


def _aif_choice(a: argparse.Namespace):
    from perfdecon.maps_job import AifChoice

    for kind, value in (("mask", a.aif_mask), ("file", a.aif_file), ("model", a.aif_model)):
        if value:
            return AifChoice(kind, Path(value))
    return AifChoice()


def _cmd_maps(a: argparse.Namespace) -> int:
    from perfdecon.cohort import discover_cases, format_cohort, run_cohort

    if a.modality == "dsc" and a.te is None:
        from perfdecon.errors import PerfdeconError

        raise PerfdeconError("--modality dsc needs the echo time TE: pass --te SECONDS")
    cfg = _maps_config(a)
    aif = _aif_choice(a)
    cases = discover_cases(a.series)
    show = not a.quiet and sys.stderr.isatty()
    if len(cases) == 1 and not cases[0].from_folder:
        from perfdecon.maps_job import run_maps
        from perfdecon.progressbar import stage_bar

        with stage_bar(enabled=show) as on_stage:
            run = run_maps(cases[0].series, a.out, config=cfg, aif=aif, mask=a.mask, dt=a.dt,
                           force=a.force, figures=not a.no_figures, on_stage=on_stage)
        for w in run.warnings:
            print(f"perfdecon: {w}", file=sys.stderr)
        s = run.summary
        print(
            f"core {s['core_volume_ml']:.1f} mL, penumbra {s['penumbra_volume_ml']:.1f} mL, "
            f"AIF {s['aif']['source']} at (x,y,z)={s['aif']['location_xyz']}; wrote {run.out}"
        )
        return 0
    report = run_cohort(cases, Path(a.out), config=cfg, aif=aif, mask=a.mask, dt=a.dt,
                        force=a.force, figures=not a.no_figures, jobs=a.jobs, progress=show)
    print(format_cohort(report))
    return 0 if report.n_failed == 0 else 2


def _cmd_phantom(a: argparse.Namespace) -> int:
    from perfdecon.phantom_job import PhantomSpec, write_phantom

    w = write_phantom(a.out, PhantomSpec(seed=a.seed, slices=a.slices, size=a.size,
                                         frames=a.frames, dt=a.dt, noise=a.noise))
    print(f"wrote phantom case to {w.out} (core {w.core_volume_ml:.1f} mL)")
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    if a.isles:
        from perfdecon.isles_eval import run_isles_evaluation

        for line in run_isles_evaluation(a.isles, out=a.out, checkpoint=a.checkpoint,
                                         max_cases=a.cases, progress=sys.stderr.isatty()):
            print(line)
        return 0
    from perfdecon.evaluate import run_evaluation

    for line in run_evaluation(
        out=a.out, cases=a.cases or 5, seed=a.seed, checkpoint=a.checkpoint, noise=a.noise,
        case_kwargs={"n_slices": a.slices, "size": a.size, "n_frames": a.frames},
    ):
        print(line)
    return 0


def _cmd_bench(a: argparse.Namespace) -> int:
    from perfdecon.bench import format_bench, run_bench

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    print(format_bench(run_bench(n_slices=a.slices, size=a.size, n_frames=a.frames,
                                 loop_voxels=a.loop_voxels, repeats=a.repeats)))
    if a.cohort:
        from perfdecon.bench import format_cohort_bench, run_cohort_bench

        print(format_cohort_bench(run_cohort_bench(a.cohort)))
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    import tempfile

    from medshared.demo import format_table
    from perfdecon.demo import demo_rows

    if a.summary_json:
        from medshared.io.outputs import check_output_path

        check_output_path(a.summary_json, what="--summary-json")
    if a.out:
        from medshared.io.outputs import check_output_folder

        check_output_folder(a.out)
        Path(a.out).mkdir(exist_ok=True)
        rows = demo_rows(Path(a.out), a.quick)
    else:
        with tempfile.TemporaryDirectory(prefix="perfdecon-demo-") as tmp:
            rows = demo_rows(Path(tmp), a.quick)
    print()
    print(format_table(rows))
    if a.summary_json:
        from perfdecon.jsonout import write_json

        write_json(a.summary_json, [r.to_json() for r in rows])
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    from perfdecon.train import main as train_main

    return int(train_main(list(a.args)) or 0)


BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables ``perfdecon maps`` defaults to 1 (a user's own value is kept)."""


def _single_blas_thread() -> None:
    """One BLAS thread for ``maps`` unless the environment says otherwise (before numpy loads).

    Its matrices are small (``T x T`` SVDs, rank updates of ``4096 x 2T`` blocks): measured on
    the 2 shared cores, OpenBLAS with 2 threads made a 120 x 120 SVD 8x slower (43 vs 5.5 ms)
    and oSVD maps 6x slower in wall time; cohort ``--jobs`` parallelise over cases instead.
    """
    import os

    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, "1")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input, one ``error:`` line on stderr)."""
    from medshared.runner import run_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["maps"] and "numpy" not in sys.modules:
        _single_blas_thread()
    if argv[:1] == ["train"]:  # the trainer has its own flags (built from its config)
        from perfdecon.train import build_parser as train_parser

        return run_cli(train_parser, argv[1:])
    return run_cli(build_parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
