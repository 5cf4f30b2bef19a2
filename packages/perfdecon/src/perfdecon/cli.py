"""Command line interface ``perfdecon`` (heavy imports happen inside the commands)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from perfdecon import __version__
from perfdecon.errors import PerfdeconError

MAP_NAMES = ("cbf", "cbv", "mtt", "tmax", "ttp", "rcbf")
UNITS = {
    "cbf": "mL/100g/min",
    "cbv": "mL/100g",
    "mtt": "s",
    "tmax": "s",
    "ttp": "s (from first frame)",
    "rcbf": "1 (CBF / reference)",
    "core": "1 = rCBF < threshold",
}


def _add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=["tikhonov", "ssvd", "csvd", "osvd"], default="tikhonov")
    p.add_argument(
        "--matrix",
        choices=["volterra", "circulant"],
        default="volterra",
        help="discretisation for tikhonov/ssvd (csvd/osvd are always circulant)",
    )
    p.add_argument("--lambda-rel", type=float, default=0.3, help="Tikhonov lambda / s_max")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfdecon",
        description="Perfusion maps (CBF, CBV, MTT, Tmax, TTP, rCBF, core) by differentiable SVD "
        "deconvolution with automatic, manual, file or learned AIF.",
    )
    parser.add_argument("--version", action="version", version=f"perfdecon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("maps", help="perfusion maps of a 4D NIfTI (x, y, z, t)")
    p.add_argument("series", help="4D CT perfusion (HU) or DSC-MR series, .nii/.nii.gz")
    p.add_argument("--out", required=True, help="output folder")
    _add_method_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--aif", choices=["auto"], default="auto", help="automatic AIF (default)")
    g.add_argument("--aif-mask", help="3D NIfTI mask of arterial voxels (manual AIF)")
    g.add_argument("--aif-file", help="text file with one AIF value per frame (concentration)")
    g.add_argument("--aif-model", help="learned-AIF checkpoint (perfdecon train)")
    p.add_argument("--mask", help="3D NIfTI brain mask (default: automatic)")
    p.add_argument("--modality", choices=["ct", "dsc"], default="ct")
    p.add_argument("--dt", type=float, help="frame interval in s (default: header pixdim[4])")
    p.add_argument("--te", type=float, help="DSC echo time in s")
    p.add_argument("--smooth-xy", type=float, default=1.5, help="in-plane sigma, voxels (0=off)")
    p.add_argument("--smooth-t", type=float, default=1.0, help="temporal sigma, frames (0=off)")
    p.add_argument("--reference", choices=["median", "contralateral"], default="median")

    p = sub.add_parser("phantom", help="write a brain-like phantom case as NIfTI + truth")
    p.add_argument("out", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slices", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--dt", type=float, default=1.0)
    p.add_argument("--noise", type=float, default=2.0, help="noise SD in HU")

    p = sub.add_parser("evaluate", help="phantom accuracy table + core segmentation per AIF")
    p.add_argument("--out", help="folder for accuracy.json, segmentation.json, bland_altman.png")
    p.add_argument("--cases", type=int, default=5, help="held-out brain phantom cases")
    p.add_argument("--seed", type=int, default=10_000)
    p.add_argument("--checkpoint", help="learned-AIF checkpoint (adds the 'learned' column)")
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 2.0, 5.0])
    p.add_argument("--slices", type=int, default=4, help="brain phantom slices")
    p.add_argument("--size", type=int, default=256, help="brain phantom in-plane size")
    p.add_argument("--frames", type=int, default=50, help="brain phantom frames")

    p = sub.add_parser("bench", help="timing of a whole case vs a per-voxel numpy loop")
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--loop-voxels", type=int, default=3000)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=3)

    p = sub.add_parser("demo", help="accuracy and Dice tables on built-in phantoms")
    p.add_argument("--summary-json", help="write headline rows as JSON")
    p.add_argument("--cases", type=int, default=2)

    p = sub.add_parser(
        "train", help="train the learned AIF (forwards to perfdecon.train)", add_help=False
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


# --------------------------------------------------------------------------------------------
def _cmd_maps(a: argparse.Namespace) -> int:
    """Run ``maps``; errors that do not name a file are prefixed with the input series."""
    try:
        return _maps(a)
    except PerfdeconError as exc:
        text = str(exc)
        named = [a.series, a.mask, a.aif_mask, a.aif_file, a.aif_model]
        if any(f and str(f) in text for f in named):
            raise
        raise PerfdeconError(f"{a.series}: {text}") from exc


def _maps(a: argparse.Namespace) -> int:
    import numpy as np

    from medshared.io import atomic_write_text
    from perfdecon.aif import AifResult, aif_from_file, plot_aif, save_aif_txt
    from perfdecon.io import read_mask, read_series, write_map
    from perfdecon.pipeline import PipelineConfig, run_case, to_concentration

    t0 = time.perf_counter()
    s = read_series(a.series)
    dt = a.dt if a.dt is not None else s.dt
    if dt is None or not dt > 0:
        raise PerfdeconError(f"{a.series}: no frame interval in the header (pixdim[4]); pass --dt")
    shape = s.data.shape[:3]
    brain = read_mask(a.mask, shape) if a.mask else None
    cfg = PipelineConfig(
        method=a.method,
        matrix=a.matrix,
        lambda_rel=a.lambda_rel,
        modality=a.modality,
        te=a.te,
        smooth_xy=a.smooth_xy,
        smooth_t=a.smooth_t,
        reference=a.reference,
    )
    t_pre = time.perf_counter()
    conc, brain = to_concentration(s.data, cfg, brain)
    t_pre = time.perf_counter() - t_pre
    if a.aif_mask:
        aif: object = "mask"
        aif_mask = read_mask(a.aif_mask, shape)
    elif a.aif_file:
        aif, aif_mask = aif_from_file(a.aif_file, s.data.shape[-1], dt), None
    elif a.aif_model:
        try:
            from perfdecon.predict import predict_aif
        except ImportError as exc:
            raise PerfdeconError(
                f"--aif-model needs perfdecon.predict, not available: {exc}"
            ) from exc
        curve = np.asarray(predict_aif(a.aif_model, conc, brain_mask=brain), np.float64).ravel()
        aif, aif_mask = (
            AifResult(curve=curve, source="model", details={"checkpoint": str(a.aif_model)}),
            None,
        )
    else:
        aif, aif_mask = "auto", None
    res = run_case(
        conc, dt, config=cfg, aif=aif, aif_mask=aif_mask, brain_mask=brain, is_concentration=True
    )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in MAP_NAMES:
        write_map(
            out / f"{name}.nii.gz", getattr(res, name).astype(np.float32), s.affine, s.spacing
        )
    write_map(out / "core.nii.gz", res.core.astype(np.uint8), s.affine, s.spacing)
    write_map(out / "penumbra.nii.gz", res.penumbra.astype(np.uint8), s.affine, s.spacing)
    save_aif_txt(out / "aif.txt", res.aif.curve)
    plot_aif(out / "aif.png", res.aif, dt)
    vox_ml = float(np.prod(s.spacing)) / 1000.0
    loc = res.aif.location
    summary = {
        "tool": "perfdecon",
        "version": __version__,
        "input": str(s.path),
        "shape_xyzt": list(s.data.shape[2::-1]) + [s.data.shape[3]],
        "dt_s": dt,
        "config": cfg.as_dict(),
        "aif": {
            "source": res.aif.source,
            "location_zyx": list(loc) if loc is not None else None,
            "location_xyz": list(loc[::-1]) if loc is not None else None,
            "location_mm": (s.affine @ np.array([*loc[::-1], 1.0]))[:3].tolist()
            if loc is not None
            else None,
            "n_voxels": int(len(res.aif.voxels)),
            "quality": None if res.aif.quality != res.aif.quality else float(res.aif.quality),
            "peak": float(np.max(res.aif.curve)),
        },
        "units": UNITS,
        "core_volume_ml": float(res.core.sum() * vox_ml),
        "penumbra_volume_ml": float(res.penumbra.sum() * vox_ml),
        "brain_volume_ml": float(res.brain_mask.sum() * vox_ml),
        "runtime_s": {
            "concentration_and_mask": round(t_pre, 4),
            **{k: round(v, 4) for k, v in res.timings.items() if k != "preprocess"},
            "wall_incl_io": round(time.perf_counter() - t0, 4),
        },
        "axes_note": "maps are written in the input's NIfTI voxel order (x, y, z) and affine",
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    print(
        f"core {summary['core_volume_ml']:.1f} mL, penumbra {summary['penumbra_volume_ml']:.1f} "
        f"mL, AIF {res.aif.source} at (z,y,x)={loc}; wrote {out}"
    )
    return 0


def _cmd_phantom(a: argparse.Namespace) -> int:
    import numpy as np

    from medshared.io import atomic_write_text
    from perfdecon.aif import save_aif_txt
    from perfdecon.io import spacing_affine, write_map
    from perfdecon.phantom import brain_case

    case = brain_case(
        np.random.default_rng(a.seed),
        n_slices=a.slices,
        size=a.size,
        n_frames=a.frames,
        dt=a.dt,
        noise_hu=a.noise,
    )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    aff = spacing_affine(case.spacing)
    # CT numbers are integers on a scanner: store int16 HU (smaller, faster to read)
    hu = np.clip(np.rint(case.ctp_hu), -32768, 32767).astype(np.int16)
    write_map(out / "ctp.nii.gz", hu, aff, case.spacing, dt=case.dt)
    for name in ("brain_mask", "core_mask", "penumbra_mask", "vessel_mask"):
        write_map(out / f"{name}.nii.gz", getattr(case, name).astype(np.uint8), aff, case.spacing)
    aif_mask = np.zeros(case.brain_mask.shape, np.uint8)
    aif_mask[case.aif_location] = 1
    write_map(out / "aif_mask.nii.gz", aif_mask, aff, case.spacing)
    for name in ("cbf", "cbv", "mtt", "tmax"):
        write_map(out / f"true_{name}.nii.gz", getattr(case, name), aff, case.spacing)
    save_aif_txt(out / "aif_true.txt", case.aif)
    vox_ml = float(np.prod(case.spacing)) / 1000.0
    atomic_write_text(
        out / "truth.json",
        json.dumps(
            {
                "seed": a.seed,
                "dt_s": case.dt,
                "spacing_zyx_mm": list(case.spacing),
                "aif_location_zyx": list(case.aif_location),
                "core_volume_ml": float(case.core_mask.sum() * vox_ml),
                "penumbra_volume_ml": float(case.penumbra_mask.sum() * vox_ml),
                "note": "ctp.nii.gz is HU (x, y, z, t); aif_true.txt is the noise-free AIF enhancement",
            },
            indent=2,
        ),
    )
    print(f"wrote phantom case to {out} (core {case.core_mask.sum() * vox_ml:.1f} mL)")
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from medshared.io import atomic_write_text
    from perfdecon.evaluate import (
        accuracy_table,
        bland_altman_plot,
        phantom_accuracy,
        segmentation_eval,
        segmentation_table,
    )

    rows = phantom_accuracy(noise_levels=tuple(a.noise))
    print("Phantom accuracy (true AIF; cells with MTT >= 4 s; errors: median [IQR], % or s)")
    print(accuracy_table(rows))
    seg = segmentation_eval(
        a.cases,
        seed=a.seed,
        checkpoint=a.checkpoint,
        case_kwargs={"n_slices": a.slices, "size": a.size, "n_frames": a.frames},
    )
    for m in seg.messages:
        print(m)
    print(f"\nCore segmentation on {a.cases} held-out brain phantoms (Tikhonov 0.3, rCBF < 0.38)")
    print(segmentation_table(seg.summary))
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "accuracy.json", json.dumps(rows, indent=1))
        atomic_write_text(
            out / "segmentation.json",
            json.dumps({"rows": seg.rows, "summary": seg.summary}, indent=1),
        )
        bland_altman_plot(out / "bland_altman.png", seg.rows)
        print(f"wrote {out}")
    return 0


def _cmd_bench(a: argparse.Namespace) -> int:
    import torch

    from perfdecon.bench import format_bench, run_bench

    if a.threads:
        torch.set_num_threads(a.threads)
    print(
        format_bench(
            run_bench(
                n_slices=a.slices,
                size=a.size,
                n_frames=a.frames,
                loop_voxels=a.loop_voxels,
                repeats=a.repeats,
            )
        )
    )
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from medshared.io import atomic_write_text
    from perfdecon.evaluate import (
        accuracy_table,
        headline_rows,
        phantom_accuracy,
        segmentation_eval,
        segmentation_table,
    )

    t0 = time.perf_counter()
    rows = phantom_accuracy(
        residues=("exponential", "gamma"), noise_levels=(0.0, 2.0), delays=(0.0, 3.0)
    )
    print("Phantom accuracy (true AIF; MTT >= 4 s; CBF error at delay 0 and 3 s, median [IQR])")
    print(accuracy_table(rows))
    seg = segmentation_eval(a.cases, case_kwargs={"n_slices": 4})
    for m in seg.messages:
        print(m)
    print(f"\nCore segmentation, {a.cases} brain phantoms, Tikhonov 0.3 Volterra, rCBF < 0.38")
    print(segmentation_table(seg.summary))
    print(f"\ndemo took {time.perf_counter() - t0:.1f} s")
    if a.summary_json:
        atomic_write_text(
            Path(a.summary_json),
            json.dumps(headline_rows(rows, seg.summary, f"{a.cases} brain phantoms"), indent=1),
        )
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    try:
        from perfdecon.train import main as train_main
    except ImportError as exc:
        raise PerfdeconError(f"training is not available (perfdecon.train: {exc})") from exc
    rc = train_main(list(a.args))
    return int(rc or 0)


COMMANDS = {
    "maps": _cmd_maps,
    "phantom": _cmd_phantom,
    "evaluate": _cmd_evaluate,
    "bench": _cmd_bench,
    "demo": _cmd_demo,
    "train": _cmd_train,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input, with ``error: ...`` on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # forward everything, including --help, to the trainer
        args = argparse.Namespace(command="train", args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PerfdeconError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # medshared errors (MedsharedError is a ValueError)
        from medshared.errors import MedsharedError

        if isinstance(exc, MedsharedError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
