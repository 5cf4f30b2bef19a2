"""Command line: ``wdrcodec encode|decode|info|eval|bench|demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wdrcodec.errors import WdrError


def _rates(text: str) -> list[float]:
    try:
        rates = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from exc
    if not rates or any(not (r > 0) for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be positive numbers: {text!r}")
    return rates


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in ("3d", "2d", "mcpd")]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"modes must be among 3d,2d,mcpd: {text!r}")
    return modes


def _add_coding_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--levels", type=int, default=5, help="max decomposition levels per axis")
    p.add_argument("--packet", action="store_true", help="wavelet-packet slice axis (3D blocks)")
    p.add_argument("--mcpd-threshold", type=float, default=0.5, help="MCPD threshold (default 0.5)")
    p.add_argument(
        "--mcpd-norm",
        choices=("std", "range", "none"),
        default="std",
        help="intensity normalisation before MCPD (default std: divide by the volume's SD)",
    )


def build_parser() -> argparse.ArgumentParser:
    from wdrcodec import __version__

    parser = argparse.ArgumentParser(
        prog="wdrcodec",
        description="Embedded 3D/2D wavelet-difference-reduction codec with MCPD slice grouping.",
    )
    parser.add_argument("--version", action="version", version=f"wdrcodec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    enc = sub.add_parser("encode", help="compress a NIfTI/DICOM-folder/.npy volume to .wdr")
    enc.add_argument("input", type=Path)
    enc.add_argument("output", type=Path)
    rate = enc.add_mutually_exclusive_group(required=True)
    rate.add_argument("--bpv", type=float, help="bits per voxel (file size incl. header)")
    rate.add_argument("--psnr", type=float, help="shortest stream reaching this PSNR (dB)")
    rate.add_argument("--lossless", action="store_true", help="reversible integer 5/3 transform")
    enc.add_argument("--mode", choices=("3d", "2d", "mcpd"), default="3d")
    enc.add_argument(
        "--psnr-range",
        choices=("ref", "dtype"),
        default="ref",
        help="PSNR peak for --psnr: data range (ref) or full dtype range (dtype)",
    )
    enc.add_argument("--float-step", type=float, default=None, help="quantisation step of floats")
    _add_coding_options(enc)

    dec = sub.add_parser("decode", help="decode .wdr to NIfTI or .npy (optionally a prefix)")
    dec.add_argument("input", type=Path)
    dec.add_argument("output", type=Path)
    dec.add_argument("--bpv", type=float, default=None, help="decode only this many bits/voxel")

    info = sub.add_parser("info", help="print the header of a .wdr file")
    info.add_argument("input", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON")

    ev = sub.add_parser("eval", help="rate-distortion table of a volume")
    ev.add_argument("input", type=Path)
    ev.add_argument("--bpv", type=_rates, default=[0.25, 0.5, 1.0, 2.0])
    ev.add_argument("--mode", type=_modes, default=("3d",), help="comma list of 3d,2d,mcpd")
    ev.add_argument("--no-lossless", action="store_true", help="skip the lossless row")
    ev.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    _add_coding_options(ev)

    bench = sub.add_parser("bench", help="compare with OpenJPEG J2K and SPERR (imagecodecs)")
    bench.add_argument("--quick", action="store_true", help="smaller speed volume, fewer rates")
    bench.add_argument("--json", type=Path, default=None, help="also write results as JSON")

    demo = sub.add_parser("demo", help="rate-distortion on real volumes from dipy/nibabel")
    demo.add_argument("--summary-json", type=Path, default=None)
    return parser


def _coding_kwargs(args) -> dict:
    return {
        "levels": args.levels,
        "packet": args.packet,
        "mcpd_threshold": args.mcpd_threshold,
        "mcpd_norm": args.mcpd_norm,
    }


def _read_wdr(path: Path) -> bytes:
    if not path.is_file():
        raise WdrError(f"{path}: no such file")
    return path.read_bytes()


def cmd_encode(args) -> int:
    from medshared.io import atomic_write_bytes
    from wdrcodec.codec import encode
    from wdrcodec.io import read_volume

    vol = read_volume(args.input)
    blob = encode(
        vol.array,
        bpv=args.bpv,
        psnr=args.psnr,
        psnr_range=args.psnr_range,
        lossless=args.lossless,
        mode=args.mode,
        spacing=vol.spacing,
        affine=vol.affine,
        axes=vol.axes,
        float_step=args.float_step,
        name=str(args.input),
        **_coding_kwargs(args),
    )
    atomic_write_bytes(args.output, blob)
    print(
        f"{args.input} -> {args.output}: {len(blob)} bytes, "
        f"{len(blob) * 8 / vol.array.size:.4f} bpv, ratio {vol.array.nbytes / len(blob):.2f}"
    )
    return 0


def cmd_decode(args) -> int:
    from wdrcodec.codec import decode_full
    from wdrcodec.io import write_output

    res = decode_full(_read_wdr(args.input), args.bpv, name=str(args.input))
    write_output(args.output, res.array, res.header)
    if args.bpv is not None and res.truncated:
        note = f" (prefix decode at {args.bpv:g} bpv)"
    elif res.truncated:
        note = " (the file is truncated: decoded at lower quality)"
    else:
        note = ""
    print(f"{args.input} -> {args.output}: {res.bytes_used} bytes decoded{note}")
    return 0


def cmd_info(args) -> int:
    from wdrcodec.codec import read_header

    data = _read_wdr(args.input)
    h = read_header(data, name=str(args.input))
    info = {
        "file": str(args.input),
        "file_bytes": len(data),
        "complete": len(data) >= h.file_size,
        "shape": list(h.shape),
        "axes": "xyz (NIfTI)" if h.axes_xyz else "zyx",
        "dtype": h.dtype,
        "lossless": h.lossless,
        "mode": h.mode,
        "levels": h.levels,
        "packet": h.packet,
        "wavelet": "LeGall 5/3 integer" if h.lossless else "CDF 9/7 float",
        "bit_planes": h.nplanes,
        "top_plane": h.top,
        "bpv": len(data) * 8 / h.n_voxels,
        "spacing": list(h.spacing),
        "affine": h.affine.tolist() if h.affine is not None else None,
        "slices_in_3d_group": [int(v) for v in h.grouping.sum(axis=1)],
        "slices_total": int(h.grouping.shape[1]),
        "mcpd_threshold": h.mcpd_threshold,
        "mcpd_norm": h.mcpd_norm,
        "header_bytes": h.header_len,
        "payload_bytes": h.payload_len,
    }
    if h.dtype.startswith("float"):
        info["float_step"] = h.quant_step
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:>20}: {v}")
    return 0


def cmd_eval(args) -> int:
    from wdrcodec.evaluate import evaluate, format_table
    from wdrcodec.io import read_volume

    vol = read_volume(args.input)
    rows = evaluate(
        vol.array,
        args.bpv,
        args.mode,
        axes=vol.axes,
        lossless=not args.no_lossless,
        **_coding_kwargs(args),
    )
    print(format_table(rows, f"{args.input} {vol.array.shape} {vol.array.dtype}"))
    if args.json:
        from medshared.io import atomic_write_text

        atomic_write_text(args.json, json.dumps([r.as_dict() for r in rows], indent=2))
    return 0


def cmd_bench(args) -> int:
    from wdrcodec.bench import run_bench

    return run_bench(quick=args.quick, json_path=args.json)


def cmd_demo(args) -> int:
    from wdrcodec.demo import run_demo

    return run_demo(summary_json=args.summary_json)


COMMANDS = {
    "encode": cmd_encode,
    "decode": cmd_decode,
    "info": cmd_info,
    "eval": cmd_eval,
    "bench": cmd_bench,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on a user error, printed without traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except WdrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:  # medshared errors and file system problems
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
