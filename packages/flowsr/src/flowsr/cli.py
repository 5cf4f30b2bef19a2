"""``flowsr`` command line: parse, call the library, print. Heavy imports inside the commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from flowsr.config import DownsampleConfig, PatchConfig, PhantomConfig, PredictConfig, TrainConfig
from medshared.runner import nonneg_float, nonneg_int, run_cli

MAX_DX_MM = 100.0  # a voxel larger than 10 cm is no 4D-flow acquisition
MIN_DT_S, MAX_DT_S = 1e-3, 60.0  # frame interval (s): 1 ms .. 1 min
MAX_VENC = 100.0  # m/s; blood flows at most a few m/s


def _dx(text: str) -> float:
    v = nonneg_float(text)
    if not 0 < v <= MAX_DX_MM:
        raise argparse.ArgumentTypeError(f"voxel size must be in (0, {MAX_DX_MM:g}] mm, got {text}")
    return v


def _zero_or(lo: float, hi: float, unit: str):  # noqa: ANN202 - argparse type factory
    """An argparse type: 0 (meaning "from the file") or a number in ``[lo, hi]`` (``unit``)."""

    def parse(text: str) -> float:
        v = nonneg_float(text)
        if v != 0 and not lo <= v <= hi:
            raise argparse.ArgumentTypeError(
                f"must be 0 or a number in [{lo:g}, {hi:g}] {unit}, got {text}"
            )
        return v

    parse.__name__ = "number"
    return parse


def _seeds(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in vals):
        raise argparse.ArgumentTypeError("seeds must be >= 0")
    return vals


def _check_out(path: str, inputs=(), what: str = "--out") -> Path:  # noqa: ANN001
    from medshared.io.outputs import check_output_path

    return check_output_path(path, inputs, what=what)


# -- commands -----------------------------------------------------------------------------
def cmd_phantom(args: argparse.Namespace) -> int:
    from flowsr.flowio import FlowSeries, write_flow_h5
    from flowsr.phantom import make_phantom
    from medshared.training import config_from_args

    out = _check_out(args.out)
    cfg = config_from_args(PhantomConfig, args)
    p = make_phantom(cfg, args.seed)
    write_flow_h5(out, FlowSeries(p.velocity, p.mask[None], [p.dx_mm] * 3, dt_s=p.dt_s),
                  compression="gzip")
    g = p.geometry
    print(f"{out}: {p.velocity.shape[1]} frames of {p.mask.shape} voxels at {p.dx_mm} mm, "
          f"radius {g.radius:.1f} mm, arch radius {g.arch_radius:.1f} mm, coarctation "
          f"{g.coarct_depth:.0%}, {p.heart_rate_bpm:.0f} bpm, peak {p.peak_velocity:.2f} m/s, "
          f"peak flow {p.flow_ml_s.max():.0f} mL/s (frame {p.peak_systole_frame})")
    return 0


def cmd_downsample(args: argparse.Namespace) -> int:
    import numpy as np

    from flowsr.downsample import choose_venc, downsample
    from flowsr.errors import FlowsrError
    from flowsr.flowio import FlowFile, FlowSeries, write_flow_h5
    from medshared.training import config_from_args

    out = _check_out(args.out, [args.input])
    cfg = config_from_args(DownsampleConfig, args)
    rng = np.random.default_rng(args.seed)
    with FlowFile(args.input) as f:
        if f.venc is not None:
            raise FlowsrError(f"{args.input}: is already a low-res file (has venc_*)")
        if not f.has_mask:
            raise FlowsrError(f"{args.input}: needs a 'mask' dataset (fluid magnitude)")
        # pass 1: VENC from the data maximum, frame by frame; pass 2: one frame at a time
        vmax = np.zeros(3)
        for t in range(f.n_frames):
            vmax = np.maximum(vmax, np.abs(f.frame(t)).reshape(3, -1).max(axis=1))
        venc = choose_venc(vmax.reshape(3, 1, 1, 1, 1), cfg.venc_margin, cfg.venc_step)
        frames = [downsample(f.frame(t)[:, None], f.mask_frame(t), float(f.dx_mm[0]), cfg, rng,
                             venc) for t in range(f.n_frames)]
        dt = f.dt_s
        dx = f.dx_mm * cfg.factor
    vel = np.concatenate([lr.velocity for lr in frames], axis=1)
    mag = np.concatenate([lr.magnitude for lr in frames], axis=1)
    mask = np.stack([lr.mask for lr in frames])
    venc_t = np.concatenate([lr.venc for lr in frames], axis=1)
    write_flow_h5(out, FlowSeries(vel, mask, dx, venc_t, mag, dt), compression="gzip")
    print(f"{out}: {vel.shape[1]} frames of {vel.shape[2:]} voxels at {dx.tolist()} mm, VENC "
          f"{venc.round(2).tolist()} m/s, SNR {cfg.snr_db} dB")
    return 0


def cmd_wmf(args: argparse.Namespace) -> int:
    import numpy as np

    from flowsr.flowio import FlowFile
    from flowsr.wmf import wmf_min
    from medshared.io import write_nifti

    out = _check_out(args.out, [args.input])
    with FlowFile(args.input) as f:
        series = f.read()
    dt = args.dt if args.dt > 0 else series.dt_s
    w = wmf_min(series.velocity, dt, str(args.input))
    write_nifti(out, w.astype(np.float32), zooms=tuple(float(z) for z in series.dx_mm))
    unit = "Hz" if dt else "cycles/frame"
    print(f"{out}: WMF_min in {unit}, median {np.median(w):.3f}, range {w.min():.3f}..{w.max():.3f}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from flowsr.datasets import series_from_files
    from flowsr.errors import FlowsrError
    from flowsr.train import train
    from flowsr.workflows import phantom_training_set
    from medshared.training import config_from_args, config_to_dict

    cfg = config_from_args(TrainConfig, args)
    patch = config_from_args(PatchConfig, args, prefix="patch_")
    series = [series_from_files(lr, hr) for lr, hr in (args.cfd or [])]
    series += [series_from_files(lr) for lr in (args.mri or [])]
    desc = {"cfd": args.cfd or [], "mri": args.mri or [], "phantoms": args.phantoms,
            "mri_phantoms": args.mri_phantoms}
    if args.phantoms or args.mri_phantoms:
        pcfg = config_from_args(PhantomConfig, args, prefix="phantom_")
        series += phantom_training_set(args.phantoms, args.mri_phantoms, pcfg)
        desc["phantom_config"] = config_to_dict(pcfg)
    if not series:
        raise FlowsrError("train: no data; give --cfd LR HR, --mri LR or --phantoms SEEDS")
    res = train(cfg, series, args.out, patch=patch, resume=args.resume, quiet=args.quiet,
                data_description=desc)
    print(f"{res.run_dir}: {res.steps} steps in {res.seconds:.1f} s, final loss "
          f"{res.final_loss:.4f}, {res.skipped} skipped updates; export {res.export}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from flowsr.errors import FlowsrError
    from flowsr.flowio import FlowFile, FlowSeries, read_flow_nifti, write_flow_h5, write_flow_nifti
    from flowsr.predict import predict_series
    from flowsr.train import load_trained
    from medshared.training import config_from_args

    inputs = [args.model, *(args.input or []), *(args.nifti or [])]
    out = str(args.out)
    is_nifti = out.endswith((".nii", ".nii.gz"))
    if is_nifti:
        stem = Path(out).name.removesuffix(".nii.gz").removesuffix(".nii")
        for suffix in ("u", "v", "w", "mask", "prob"):
            _check_out(str(Path(out).with_name(f"{stem}_{suffix}.nii.gz")), inputs)
    else:
        _check_out(out, inputs)
    pcfg = config_from_args(PredictConfig, args)
    model = load_trained(args.model, args.device)
    if args.nifti:
        series = read_flow_nifti(args.nifti, args.mask, args.dx)
        if args.venc <= 0:
            raise FlowsrError("--venc (m/s) is required for NIfTI input (the velocity scale)")
        scale = np.full(series.n_frames, args.venc, np.float32)
    elif args.input:
        with FlowFile(args.input[0]) as f:
            series = f.read()
        if args.venc > 0:
            scale = np.full(series.n_frames, args.venc, np.float32)
        elif series.venc is not None:
            scale = series.venc.max(axis=0)
        else:
            raise FlowsrError(f"{args.input[0]}: no venc_* datasets; give --venc (m/s)")
    else:
        raise FlowsrError("predict: give an HDF5 file or --nifti U V W")
    pred = predict_series(model, series.velocity, scale, pcfg, device=args.device,
                          quiet=args.quiet)
    seg = pred.segmentation(pcfg.threshold)
    dx = np.asarray(series.dx_mm, float) / 2
    affine = None
    if series.affine is not None:
        affine = series.affine.copy()
        affine[:3, :3] = affine[:3, :3] / 2
        affine[:3, 3] += affine[:3, :3] @ np.full(3, -0.5)  # voxel centres of the 2x grid
    hr = FlowSeries(pred.velocity, seg, dx, dt_s=series.dt_s, affine=affine)
    if is_nifti:
        extra = {} if pred.probability is None else {"prob": pred.probability}
        written = write_flow_nifti(out, hr, extra)
        print("wrote " + ", ".join(map(str, written)))
    else:
        write_flow_h5(out, hr, compression="gzip")
        print(f"{out}: {pred.velocity.shape[1]} frames of {pred.velocity.shape[2:]} voxels at "
              f"{dx.tolist()} mm ({pred.patches} patches)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from flowsr.errors import FlowsrError
    from flowsr.evaluate import evaluate, format_table, save_figures
    from flowsr.train import load_trained
    from flowsr.workflows import descending_plane, held_out_case
    from medshared.io.outputs import output_set
    from medshared.training import config_from_args

    models = {}
    for item in args.model or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise FlowsrError(f"--model {item!r}: expected NAME=PATH")
        models[name] = path
    names = ["metrics.json", "speed_slices.png", "wmf.png", "segmentation.png"]
    with output_set(args.out, None, list(models.values())) as stage:
        loaded = {n: load_trained(p, args.device) for n, p in models.items()}
        pcfg = config_from_args(PhantomConfig, args, prefix="phantom_")
        case = held_out_case(args.seed, pcfg)
        predict_cfg = config_from_args(PredictConfig, args)
        ev = evaluate(case.phantom.velocity, case.phantom.mask, case.series.lr_velocity,
                      case.series.scale, loaded, case.frames,
                      descending_plane(case.phantom.geometry), case.phantom.dx_mm,
                      predict_config=predict_cfg, device=args.device)
        table = format_table(ev)
        save_figures(ev, stage)
        (stage / names[0]).write_text(json.dumps(
            [{"method": r.method, "frame": r.frame_label, **r.metrics.as_dict(),
              "flow_ml_s": r.flow_ml_s, "flow_ref_ml_s": r.flow_ref_ml_s,
              "peak_speed": r.peak_speed} for r in ev.results], indent=2) + "\n")
    print(f"held-out phantom geometry: seed {args.seed}")
    print(table)
    print(f"figures and metrics.json in {args.out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from flowsr.bench import run_bench

    print(run_bench(quick=not args.full, device=args.device))
    return 0


# -- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``flowsr`` parser (subcommands set ``func``)."""
    from flowsr import __version__
    from medshared.demo import add_demo_command
    from medshared.training import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="flowsr",
        description="4D flow MRI 2x super-resolution + vessel segmentation (SURFR-Net with WMF).",
    )
    parser.add_argument("--version", action="version", version=f"flowsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("phantom", help="write a CFD-like aortic-arch phantom (4DFlowNet HDF5)")
    p.add_argument("--out", required=True, help="output .h5 (high-res layout; m/s, mm)")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="geometry/physiology seed (integer; default: 0)")
    add_config_arguments(p, PhantomConfig)
    p.set_defaults(func=cmd_phantom)

    p = sub.add_parser("downsample", help="synthetic noisy low-res series from a high-res file")
    p.add_argument("input", help="high-res .h5 (u, v, w in m/s, mask, dx in mm)")
    p.add_argument("--out", required=True, help="output low-res .h5 (adds mag_*, venc_* in m/s)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="noise seed (default: 0)")
    add_config_arguments(p, DownsampleConfig)
    p.set_defaults(func=cmd_downsample)

    p = sub.add_parser("wmf", help="Weighted Mean Frequencies map (eqs. 1-3) as NIfTI")
    p.add_argument("input", help="flow .h5 with at least 3 frames")
    p.add_argument("--out", required=True, help="output .nii.gz (X, Y, Z) in Hz (or cycles/frame)")
    p.add_argument("--dt", type=_zero_or(MIN_DT_S, MAX_DT_S, "s"), default=0.0,
                   help=f"frame interval (s), {MIN_DT_S:g} to {MAX_DT_S:g} s; 0 = the file's "
                        "dt_s attribute, else cycles/frame (default: 0)")
    p.set_defaults(func=cmd_wmf)

    p = sub.add_parser("train", help="train SURFR-Net or an ablation (torchrun for DDP)")
    p.add_argument("--out", required=True, help="run folder (config.json, metrics.jsonl, "
                                                "last.pt, final.pt, model.safetensors)")
    p.add_argument("--cfd", nargs=2, action="append", metavar=("LR", "HR"),
                   help="a CFD pair: low-res .h5 (with venc_*) and high-res .h5 (repeatable; "
                        "default: none)")
    p.add_argument("--mri", action="append", metavar="LR",
                   help="an MRI low-res .h5 with a mask (segmentation only; repeatable; "
                        "default: none)")
    p.add_argument("--phantoms", type=_seeds, default=[],
                   help="comma-separated seeds of CFD-like phantoms to train on (default: none)")
    p.add_argument("--mri-phantoms", type=_seeds, default=[],
                   help="seeds of MRI-like phantoms (segmentation only; default: none)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (default: off)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    add_config_arguments(p, TrainConfig)
    add_config_arguments(p, PatchConfig, prefix="patch_")
    add_config_arguments(p, PhantomConfig, prefix="phantom_")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="super-resolve a whole series (all frames)")
    p.add_argument("input", nargs="*", help="low-res .h5 (4DFlowNet layout)")
    p.add_argument("--nifti", nargs=3, metavar=("U", "V", "W"),
                   help="NIfTI input instead: u, v, w files (X, Y, Z[, T]) in m/s "
                        "(default: none, read the .h5 input)")
    p.add_argument("--mask", help="NIfTI fluid mask for --nifti input (default: none)")
    p.add_argument("--dx", type=_dx, nargs=3, metavar=("DX", "DY", "DZ"),
                   help="expected voxel size (mm) of --nifti input, checked against the headers "
                        "(default: not checked)")
    p.add_argument("--model", required=True, help="model.safetensors from flowsr train")
    p.add_argument("--out", required=True,
                   help="output .h5, or a .nii.gz prefix (writes PREFIX_u/_v/_w/_mask/_prob)")
    p.add_argument("--venc", type=_zero_or(1e-3, MAX_VENC, "m/s"), default=0.0,
                   help=f"velocity scale (m/s), at most {MAX_VENC:g} m/s; 0 = the file's max "
                        "VENC (default: 0)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    add_config_arguments(p, PredictConfig)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="Table-1 comparison on a held-out phantom + figures")
    p.add_argument("--model", action="append", metavar="NAME=PATH",
                   help="a trained export to compare (repeatable); trilinear and tricubic are "
                        "always included (default: none, the interpolation baselines only)")
    p.add_argument("--seed", type=nonneg_int, default=1000,
                   help="held-out phantom geometry seed (default: 1000)")
    p.add_argument("--out", required=True, help="folder for metrics.json and PNG figures")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_config_arguments(p, PhantomConfig, prefix="phantom_")
    add_config_arguments(p, PredictConfig)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="inference and training-step timings (CPU by default)")
    p.add_argument("--full", action="store_true",
                   help="64x64x32 low-res x 20 frames and the default model (slow on CPU)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.set_defaults(func=cmd_bench)

    add_demo_command(sub, "flowsr", "flowsr.demo:demo_rows")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flowsr`` console script."""
    return run_cli(build_parser, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
