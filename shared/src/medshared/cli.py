"""Command line of medshared: compare two images with every intensity metric, or benchmark.

``medshared compare REF TEST [--data-range dtype|ref|NUMBER]`` prints PSNR, SSIM, LNCC and MSE of
two NIfTI/.npy volumes of equal shape; ``medshared bench`` runs :mod:`medshared.bench`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medshared import __version__
from medshared.errors import MedsharedError


def _load(path: str):
    import numpy as np

    p = Path(path)
    if not p.exists():
        raise MedsharedError(f"{p}: no such file")
    if p.suffix == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise MedsharedError(f"{p}: not a readable .npy array ({exc})") from exc
    from medshared.io import read_nifti

    return read_nifti(p).data


def _data_range(text: str):
    if text in ("dtype", "ref"):
        return text
    try:
        return float(text)
    except ValueError as exc:
        raise MedsharedError(
            f"--data-range must be 'dtype', 'ref' or a number, got {text!r}"
        ) from exc


def _compare(args: argparse.Namespace) -> int:
    import numpy as np

    from medshared.metrics import lncc, mse, psnr, ssim

    ref = np.squeeze(_load(args.ref))
    test = np.squeeze(_load(args.test))
    data_range = _data_range(args.data_range)
    if ref.shape != test.shape:
        raise MedsharedError(f"{args.test}: shape {test.shape} differs from {args.ref} {ref.shape}")
    if ref.ndim == 4:
        # A 4D series (X, Y, Z, T): SSIM and LNCC are 3D measures, averaged over the volumes;
        # a "ref" data range is the range of the whole reference series.
        if data_range == "ref":
            data_range = float(ref.max()) - float(ref.min())
        vols = range(ref.shape[3])
        s_val = float(np.mean([ssim(ref[..., t], test[..., t], data_range) for t in vols]))
        l_val = float(np.mean([lncc(ref[..., t], test[..., t]) for t in vols]))
        note = f"  (SSIM/LNCC: mean over {ref.shape[3]} volumes)"
    else:
        s_val, l_val, note = ssim(ref, test, data_range), lncc(ref, test), ""
    rows = [
        ("PSNR (dB)", psnr(ref, test, data_range=data_range)),
        ("SSIM", s_val),
        ("LNCC (9 vox)", l_val),
        ("MSE", mse(ref, test)),
    ]
    print(f"ref {args.ref}  test {args.test}  shape {ref.shape}  data_range {data_range}{note}")
    for name, value in rows:
        print(f"{name:<14}{value:>14.6g}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medshared", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medshared {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    cmp_ = sub.add_parser("compare", help="PSNR/SSIM/LNCC/MSE of two images (.nii/.nii.gz/.npy)")
    cmp_.add_argument("ref")
    cmp_.add_argument("test")
    cmp_.add_argument(
        "--data-range",
        default="ref",
        help="peak for PSNR/SSIM: 'dtype' (full integer range), 'ref' (reference max-min, "
        "default) or a number",
    )
    cmp_.set_defaults(func=_compare)
    bench = sub.add_parser("bench", help="time SSIM and HD95 against skimage/scipy references")
    bench.add_argument("--repeats", type=int, default=3)
    bench.set_defaults(
        func=lambda a: __import__("medshared.bench").bench.main(["--repeats", str(a.repeats)])
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medshared`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MedsharedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
