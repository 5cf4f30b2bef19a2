"""``usenhance`` command line: thin subcommands over the library (heavy imports inside)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medshared.runner import int_range, run_cli

__all__ = ["build_parser", "main"]


def _named_ckpt(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--ckpt expects NAME=PATH, got {text!r}")
    name, path = text.split("=", 1)
    if not name or not path:
        raise argparse.ArgumentTypeError(f"--ckpt expects NAME=PATH, got {text!r}")
    return name, path


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", 0):
        import torch

        torch.set_num_threads(args.threads)


def cmd_simulate(args: argparse.Namespace) -> int:
    from usenhance.phantom import SimConfig
    from usenhance.simdata import write_dataset

    files = write_dataset(args.out, args.n, args.organs.split(","),
                          SimConfig(shape=(args.size, args.size)), args.seed, args.bit_depth,
                          quiet=args.quiet)
    print(f"wrote {len(files)} images ({len(files) // 2} pairs) to {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from medshared.training import config_from_args
    from usenhance.config import TrainConfig
    from usenhance.train import train

    _threads(args)
    cfg = config_from_args(TrainConfig, args)
    res = train(args.data, args.out, cfg, resume=args.resume, device=args.device,
                lpips_weights=args.lpips_weights, quiet=args.quiet)
    print(f"{cfg.model}: {res.epochs} epochs, {res.steps} iterations in {res.seconds:.1f} s "
          f"({res.skipped_steps} skipped updates); enhancer: {res.export}")
    return 0


def cmd_enhance(args: argparse.Namespace) -> int:
    from usenhance.predict import enhance_files, load_enhancer

    _threads(args)
    enh = load_enhancer(args.ckpt, device=args.device)
    rep = enhance_files(args.input, args.output, enh, quiet=args.quiet)
    print(f"enhanced {rep.frames} frame(s) into {len(rep.written)} file(s) in {rep.seconds:.1f} s; "
          f"{len(rep.skipped)} skipped")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from usenhance.evaluate import CONVENTIONS, run_evaluation

    _threads(args)
    ckpts = dict(args.ckpt)
    proposed = args.proposed or next(iter(ckpts))
    run = run_evaluation(args.data, ckpts, args.out, proposed=proposed, split=args.split,
                         split_seed=args.split_seed, lpips_weights=args.lpips_weights,
                         lpips_random_backbone=args.lpips_random_backbone,
                         max_images=args.max_images, quiet=args.quiet)
    for c in CONVENTIONS:
        print(f"\n[{c} convention] mean over {len(run.result.names)} {args.split} images; "
              f"p: one-sided Wilcoxon, {proposed} better")
        print(run.result.table(c))
    print(f"\nwrote {', '.join(str(f) for f in run.files)}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from usenhance.bench import run_bench

    run_bench(threads=args.threads, repeats=args.repeats, device=args.device, quick=args.quick)
    return 0




def build_parser() -> argparse.ArgumentParser:
    """The ``usenhance`` argument parser (subcommands set ``func``)."""
    from medshared.demo import add_demo_command
    from medshared.training import add_config_arguments
    from usenhance import __version__
    from usenhance.config import TrainConfig
    from usenhance.phantom import ORGANS

    p = argparse.ArgumentParser(
        prog="usenhance",
        description="Handheld-to-high-end ultrasound enhancement (CycleGAN + LPIPS perceptual "
                    "loss), baselines, B-mode simulator and paired evaluation.")
    p.add_argument("--version", action="version", version=f"usenhance {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, device: bool = True) -> None:
        sp.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
        sp.add_argument("--threads", type=int_range(0), default=0,
                        help="CPU threads for torch (count; 0 = torch's default) (default: 0)")
        if device:
            sp.add_argument("--device", default="cpu" if sp.prog.endswith(("enhance", "bench"))
                            else "auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")

    s = sub.add_parser("simulate", help="write a simulated USEnhance-layout dataset")
    s.add_argument("out", type=Path, help="dataset folder to create")
    s.add_argument("--n", type=int_range(1), default=20,
                   help="pairs per organ (count) (default: 20)")
    s.add_argument("--organs", default=",".join(ORGANS),
                   help=f"comma-separated organs (default: {','.join(ORGANS)})")
    s.add_argument("--size", type=int_range(16, 4096), default=256,
                   help="image side (pixels) (default: 256)")
    s.add_argument("--seed", type=int_range(0), default=0, help="seed (default: 0)")
    s.add_argument("--bit-depth", type=int, choices=(8, 16), default=8,
                   help="PNG bit depth (bits) (default: 8)")
    s.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    s.set_defaults(func=cmd_simulate)

    t = sub.add_parser("train", help="train cyclegan-perceptual, cyclegan or pix2pix")
    t.add_argument("data", type=Path, help="paired dataset (<organ>/{low,high}_quality) or trainA/trainB")
    t.add_argument("out", type=Path, help="run folder (config.json, metrics.jsonl, checkpoints)")
    t.add_argument("--resume", action="store_true", help="continue the run in OUT (default: off)")
    t.add_argument("--lpips-weights", type=Path, default=None,
                   help="torchvision vgg16-397923af.pth (default: <torch hub>/checkpoints/)")
    common(t)
    add_config_arguments(t, TrainConfig)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("enhance", help="enhance a PNG/DICOM file or folder")
    e.add_argument("input", type=Path, help="input file or folder")
    e.add_argument("output", type=Path, help="output file (for a file) or folder")
    e.add_argument("--ckpt", type=Path, required=True, help="generator.safetensors of a run")
    common(e)
    e.set_defaults(func=cmd_enhance)

    v = sub.add_parser("evaluate", help="score models against the high-quality images")
    v.add_argument("data", type=Path, help="paired dataset folder")
    v.add_argument("out", type=Path, help="results folder (metrics.json, tables, grids)")
    v.add_argument("--ckpt", type=_named_ckpt, action="append", required=True,
                   help="NAME=generator.safetensors, repeatable (reference-low is always added)")
    v.add_argument("--proposed", default=None,
                   help="model the Wilcoxon tests compare against (default: the first --ckpt)")
    v.add_argument("--split", choices=("train", "val", "test", "all"), default="test",
                   help="which split to score (default: test)")
    v.add_argument("--split-seed", type=int_range(0), default=0,
                   help="split seed, as in training (default: 0)")
    v.add_argument("--max-images", type=int_range(0), default=0,
                   help="score at most this many images (count; 0 = all) (default: 0)")
    v.add_argument("--lpips-weights", type=Path, default=None,
                   help="torchvision vgg16-397923af.pth (default: <torch hub>/checkpoints/)")
    v.add_argument("--lpips-random-backbone", action="store_true",
                   help="random VGG trunk, figures labelled LPIPS(random VGG) (default: off)")
    common(v, device=False)
    v.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("bench", help="inference and training-iteration timings vs the reference code")
    b.add_argument("--repeats", type=int_range(1, 100), default=1,
                   help="timed repeats per measurement (count) (default: 1)")
    b.add_argument("--threads", type=int_range(1), default=2,
                   help="CPU threads (count) (default: 2, as the anchor)")
    b.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    b.add_argument("--quick", action="store_true",
                   help="skip the 512x512 inference and the reference LPIPS timing (default: off)")
    b.set_defaults(func=cmd_bench)

    add_demo_command(sub, "usenhance", "usenhance.demo:demo_rows")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``usenhance`` console script."""
    return run_cli(build_parser, argv)
