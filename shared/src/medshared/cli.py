"""Command line of medshared: run every installed tool's demo, compare two images, benchmark.

``medshared demo [--only TOOL ...] [--out DIR] [--json FILE] [--quick]`` runs the demo of every
installed tool and prints one results table (:mod:`medshared.demo`);
``medshared compare REF TEST [--data-range dtype|ref|NUMBER] [--json FILE]`` prints PSNR, SSIM,
LNCC and MSE of two NIfTI/.npy images of equal shape (:mod:`medshared.compare`);
``medshared bench`` runs :mod:`medshared.bench`. Errors are one line (exit 2), see
:mod:`medshared.runner`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medshared import __version__
from medshared.runner import positive_int, run_cli


def _data_range(text: str) -> str | float:
    from medshared.compare import MAX_DATA_RANGE, parse_data_range
    from medshared.errors import MedsharedError

    try:
        return parse_data_range(text)
    except MedsharedError as exc:
        raise argparse.ArgumentTypeError(
            f"expected 'dtype', 'ref' or a positive finite number, got {text!r} "
            f"(a number must be in (0, {MAX_DATA_RANGE:g}])"
        ) from exc


def _compare(args: argparse.Namespace) -> int:
    from medshared.compare import compare_files
    from medshared.io.atomic import atomic_write_text
    from medshared.io.outputs import check_output_path

    inputs = (args.ref, args.test)
    if args.json is not None:
        check_output_path(args.json, inputs, what="--json")
    result = compare_files(args.ref, args.test, args.data_range)
    note = f"  (SSIM/LNCC: mean over {result.volumes} volumes)" if result.volumes > 1 else ""
    print(
        f"ref {args.ref}  test {args.test}  shape {result.shape}  "
        f"data_range {result.data_range:g} ({args.data_range}){note}"
    )
    psnr_text = "inf (identical)" if result.mse == 0 else f"{result.psnr_db:>14.6g}"
    print(f"{'PSNR (dB)':<14}{psnr_text:>14}")
    for name, value in (("SSIM", result.ssim), ("LNCC (9 vox)", result.lncc), ("MSE", result.mse)):
        print(f"{name:<14}{value:>14.6g}")
    if args.json is not None:
        payload = {"ref": str(args.ref), "test": str(args.test), **result.to_json()}
        text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
        atomic_write_text(args.json, text, inputs=inputs, what="--json")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from medshared import demo

    return demo.main(only=args.only, out_dir=args.out, quick=args.quick, json_path=args.json)


def _bench(args: argparse.Namespace) -> int:
    from medshared import bench

    return bench.main(["--repeats", str(args.repeats)])


def build_parser() -> argparse.ArgumentParser:
    """The ``medshared`` parser (subcommands ``demo``, ``compare``, ``bench``)."""
    parser = argparse.ArgumentParser(
        prog="medshared", description=__doc__.splitlines()[0].rstrip(".")
    )
    parser.add_argument("--version", action="version", version=f"medshared {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run the demo of every installed tool and print one results table",
        description="Run each installed tool's demo on built-in data (nothing is downloaded) "
        "and print one table of the headline results.",
    )
    demo.add_argument(
        "--only", nargs="+", metavar="TOOL", default=None,
        help="run only these tools' demos (default: every installed tool)",
    )
    demo.add_argument(
        "--out", type=Path, default=None, metavar="DIR",
        help="folder for the demos' files, one sub-folder per tool (default: a temporary "
        "folder, deleted afterwards)",
    )
    demo.add_argument(
        "--json", type=Path, default=None, metavar="FILE",
        help="also write the result rows as JSON to FILE (default: not written)",
    )
    demo.add_argument(
        "--quick", action="store_true",
        help="smaller data / fewer iterations, for a smoke test (default: off)",
    )
    demo.set_defaults(func=_demo)

    cmp_ = sub.add_parser(
        "compare",
        help="PSNR/SSIM/LNCC/MSE of two images (.nii/.nii.gz/.npy)",
        description="PSNR (dB), SSIM, LNCC (9-voxel window) and MSE of TEST against REF, "
        "computed slab by slab so large volumes fit in memory.",
    )
    cmp_.add_argument("ref", type=Path, help="reference image (.nii, .nii.gz or .npy)")
    cmp_.add_argument("test", type=Path, help="test image, same shape (.nii, .nii.gz or .npy)")
    cmp_.add_argument(
        "--data-range", type=_data_range, default="ref", metavar="dtype|ref|NUMBER",
        help="peak for PSNR/SSIM in image units: 'dtype' (full integer range, e.g. 65535 for "
        "16-bit), 'ref' (reference max - min) or a number in (0, 1e38] (default: ref)",
    )
    cmp_.add_argument(
        "--json", type=Path, default=None, metavar="FILE",
        help="also write the metrics as JSON to FILE (default: not written)",
    )
    cmp_.set_defaults(func=_compare)

    bench = sub.add_parser(
        "bench", help="time SSIM and HD95 against scikit-image/scipy references"
    )
    bench.add_argument(
        "--repeats", type=positive_int, default=3,
        help="timed runs per function, the median is reported (count, default 3)",
    )
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medshared`` console script; returns the exit status."""
    return run_cli(build_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
