"""Command line: ``wdrcodec encode|decode|info|eval|bench|demo`` (parses and prints only).

The work is done by the library (:mod:`wdrcodec.files`, :mod:`wdrcodec.evaluate`,
:mod:`wdrcodec.bench`, :mod:`wdrcodec.demo`); heavy imports happen inside the commands, so
``--help`` is fast. Errors go through :func:`medshared.runner.run_cli`: a user error is one line
and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medshared.runner import float_range, int_range, run_cli
from medshared.training.config import add_config_arguments, config_from_args
from wdrcodec.config import DecodeConfig, EncodeConfig
from wdrcodec.errors import WdrError

CODING_FIELDS = (
    "mode",
    "levels",
    "packet",
    "mcpd_threshold",
    "mcpd_norm",
    "float_step",
    "coder",
    "background",
    "wavelet",
    "threads",
)


def _rates(text: str) -> list[float]:
    try:
        rates = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from None
    if not rates or any(not (0 < r < 1e6) for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be positive finite numbers: {text!r}")
    return rates


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if not modes or any(m not in ("3d", "2d", "mcpd") for m in modes):
        raise argparse.ArgumentTypeError(f"modes must be among 3d,2d,mcpd: {text!r}")
    return modes


BENCH_SECTIONS = ("rd", "speed", "lossless", "contexts", "startup", "threads")  # bench.SECTIONS


def _sections(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    if not names or any(m not in BENCH_SECTIONS for m in names):
        raise argparse.ArgumentTypeError(
            f"sections must be among {','.join(BENCH_SECTIONS)}: {text!r}"
        )
    return names


def _add_batch_options(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help=f"INPUT OUTPUT, or with --out-dir any number of inputs ({kind}: files, folders, globs)",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="write one output per input into this existing folder (default: none, the last "
        "PATH is the output)",
    )
    p.add_argument(
        "--jobs",
        type=int_range(1, 256),
        default=1,
        help="worker processes for several inputs (count; default: 1)",
    )
    p.add_argument("--quiet", action="store_true", help="print only errors (default: off)")


def _cli_threads(p: argparse.ArgumentParser) -> None:
    """The command line threads every core by default (``CLI_THREADS``); the Python API's
    default (one thread) suits callers that run their own threads or processes (zarr, dask)."""
    from dataclasses import fields

    from wdrcodec.config import CLI_THREADS

    api = next(f.default for f in fields(EncodeConfig) if f.name == "threads")
    for action in p._actions:
        if action.dest == "threads":
            action.default = CLI_THREADS
            action.help = (action.help or "").rsplit(" (default:", 1)[0] + (
                f" (default: {CLI_THREADS}; the Python API's default is {api})"
            )


def build_parser() -> argparse.ArgumentParser:
    from wdrcodec import __version__

    parser = argparse.ArgumentParser(
        prog="wdrcodec",
        description="Embedded 3D/2D wavelet-difference-reduction codec with MCPD slice grouping.",
    )
    parser.add_argument("--version", action="version", version=f"wdrcodec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    enc = sub.add_parser(
        "encode",
        help="compress NIfTI/DICOM-folder/.npy volumes to .wdr",
        description="Give exactly one of --bpv, --psnr or --lossless (--bpv with --lossless: "
        "a lossy prefix of the lossless stream).",
    )
    _add_batch_options(enc, ".nii/.nii.gz/.npy or DICOM series folders")
    add_config_arguments(enc, EncodeConfig)
    _cli_threads(enc)
    enc.set_defaults(func=cmd_encode)

    dec = sub.add_parser("decode", help="decode .wdr to NIfTI or .npy (optionally a prefix)")
    _add_batch_options(dec, ".wdr")
    add_config_arguments(dec, DecodeConfig)
    _cli_threads(dec)
    dec.add_argument(
        "--format",
        choices=("nii.gz", "nii", "npy", "dicom"),
        default=None,
        help="output format: with --out-dir the file type written (default: nii.gz); dicom: "
        "the output is a folder receiving a DICOM series (needs a .wdr encoded from DICOM)",
    )
    dec.add_argument(
        "--trust-tail",
        action="store_true",
        help="also decode the incomplete, unverifiable last block of a truncated file "
        "(default: off, it is left out)",
    )
    dec.set_defaults(func=cmd_decode)

    info = sub.add_parser("info", help="print the header of a .wdr file")
    info.add_argument("input", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON (default: a table)")
    info.set_defaults(func=cmd_info)

    ev = sub.add_parser("eval", help="rate-distortion table of a volume")
    ev.add_argument("input", type=Path)
    ev.add_argument(
        "--bpv",
        type=_rates,
        default=[0.25, 0.5, 1.0, 2.0],
        help="comma list of rates (bits/voxel; default: 0.25,0.5,1,2)",
    )
    ev.add_argument(
        "--modes",
        "--mode",
        dest="modes",
        type=_modes,
        default=("3d",),
        help="comma list of 3d,2d,mcpd (default: 3d)",
    )
    ev.add_argument(
        "--no-lossless", action="store_true", help="skip the lossless row (default: off)"
    )
    ev.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="write PSNR and SSIM against bpv per mode as a PNG (default: none)",
    )
    ev.add_argument(
        "--strip",
        type=Path,
        default=None,
        help="write a slice strip (original, decoded, error) as a PNG (default: none)",
    )
    ev.add_argument(
        "--strip-bpv",
        type=_rates,
        default=[0.5],
        help="rate of the strip's decode (bits/voxel; default: 0.5)",
    )
    ev.add_argument(
        "--json", type=Path, default=None, help="also write the rows as JSON (default: none)"
    )
    add_config_arguments(
        ev, EncodeConfig, exclude=("bpv", "psnr", "psnr_range", "lossless", "mode")
    )
    for action in ev._actions:
        if action.dest == "wavelet":
            action.help = (action.help or "").replace(
                "the lossless mode always uses", "the lossless rows always use"
            )
    _cli_threads(ev)
    ev.set_defaults(func=cmd_eval)

    bench = sub.add_parser("bench", help="compare with OpenJPEG J2K and SPERR (imagecodecs)")
    bench.add_argument(
        "--quick", action="store_true", help="smaller volumes, fewer rates (default: off)"
    )
    bench.add_argument(
        "--json", type=Path, default=None, help="also write results as JSON (default: none)"
    )
    bench.add_argument(
        "--plots",
        type=Path,
        default=None,
        help="existing folder for the pictures of the rd section: rd_<volume>.png (PSNR/SSIM vs "
        "bpv, WDR and each anchor: J2K, HTJ2K, SPERR-3D) and strip_<volume>.png (original, "
        "WDR-3D decoded at --strip-bpv, error) for dipy S0_10slices and example4d (default: "
        "none)",
    )
    bench.add_argument(
        "--strip-bpv",
        type=float_range(0.0, 64.0, lo_open=True),
        default=0.5,
        help="rate of the pictures' slice strips (bits/voxel, > 0 and <= 64; default: 0.5)",
    )
    bench.add_argument(
        "--sections",
        type=_sections,
        default=None,
        help="comma list of the parts to run, among rd,speed,lossless,contexts,startup,threads "
        "(default: all)",
    )
    bench.set_defaults(func=cmd_bench)

    demo = sub.add_parser("demo", help="rate-distortion on real volumes from dipy/nibabel")
    demo.add_argument("--quick", action="store_true", help="fewer rates (default: off)")
    demo.add_argument(
        "--out-dir", type=Path, default=None, help="folder for the demo's files (default: none)"
    )
    demo.add_argument(
        "--summary-json",
        type=Path,
        default=None,
        help="write the headline rows as JSON (default: none)",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def _pairs(args, suffix: str, *, dicom: bool, folder_out: bool = False):
    """``(inputs, outputs)`` of a single or batch command; every output checked first."""
    from wdrcodec.files import check_output, check_output_folder, expand_inputs, plan_outputs

    if args.out_dir is None:
        if len(args.paths) != 2:
            raise WdrError(
                f"{args.command}: give INPUT OUTPUT, or several inputs with --out-dir FOLDER "
                f"(got {len(args.paths)} paths)"
            )
        inp, out = Path(args.paths[0]), Path(args.paths[1])
        if folder_out:
            check_output_folder(out, [inp])
        else:
            check_output(out, [inp])
        return [inp], [out]
    suffixes = (".wdr",) if not dicom else (".nii.gz", ".nii", ".npy")
    inputs = expand_inputs(args.paths, suffixes, dicom_folders=dicom)
    return inputs, plan_outputs(inputs, args.out_dir, suffix)


def _run_all(args, job, inputs, outputs, extra: tuple, show) -> int:
    """One file: run it here (errors propagate unchanged). Several: a batch that reports every
    file and exits 2 if any failed."""
    from wdrcodec.files import BatchItem, run_batch

    if args.out_dir is None:
        item = BatchItem(str(inputs[0]), job(inputs[0], outputs[0], *extra), None)
        if show:
            show(item)
        return 0
    items = run_batch(job, inputs, outputs, extra, args.jobs, show)
    failed = [it for it in items if it.error is not None]
    for it in failed:
        print(f"wdrcodec: error: {it.error}", file=sys.stderr)
    if not args.quiet:
        print(f"{len(items) - len(failed)} of {len(items)} files done")
    return 2 if failed else 0


def _print_encode(item) -> None:
    r = item.report
    if r is None:
        return
    if r.exact:
        kind = ", lossless (bit-exact)"
    elif r.float_step is not None:
        kind = (
            f", float quantised with step {r.float_step:.6g}: max error {r.float_max_error:.6g}"
            + (" (lossless for the quantised values only, not bit-exact)" if r.lossless else "")
        )
    else:
        kind = ""
    dcm = f"; DICOM attributes {r.dicom_attributes}" if r.dicom_attributes else ""
    print(
        f"{r.input} -> {r.output}: {r.nbytes} bytes, {r.bpv:.4f} bpv, ratio {r.ratio:.2f}{kind}"
        f"{dcm}"
    )


def _print_decode(item) -> None:
    r = item.report
    if r is None:
        return
    note = ""
    if r.prefix and r.truncated:
        note = " (prefix decode)"
    elif r.truncated:
        note = " (the file is truncated: decoded at lower quality)"
    if r.unverified_bytes and r.tail_used:
        note += (
            f"; WARNING: the last {r.unverified_bytes} bytes could not be verified (no complete "
            "CRC block) and were decoded anyway (--trust-tail)"
        )
    elif r.unverified_bytes:
        note += (
            f"; the last {r.unverified_bytes} bytes could not be verified (incomplete CRC block) "
            "and were left out (--trust-tail decodes them)"
        )
    print(f"{r.input} -> {r.output}: {r.bytes_used} bytes decoded{note}")
    if r.unverified_bytes:
        print(
            f"wdrcodec: warning: {r.input}: truncated, unverified tail of {r.unverified_bytes} "
            f"bytes {'decoded' if r.tail_used else 'left out'}",
            file=sys.stderr,
        )


def cmd_encode(args) -> int:
    config = config_from_args(EncodeConfig, args)
    inputs, outputs = _pairs(args, ".wdr", dicom=True)
    from dataclasses import replace

    from wdrcodec.files import batch_threads, encode_file
    from wdrcodec.jit import ensure_compiled

    config = replace(config, threads=batch_threads(config.threads, args.jobs, len(inputs)))

    ensure_compiled(quiet=args.quiet, cli=True, coder=config.coder)
    show = None if args.quiet else _print_encode
    return _run_all(args, encode_file, inputs, outputs, (config,), show)


def cmd_decode(args) -> int:
    limits = config_from_args(DecodeConfig, args)
    dicom = args.format == "dicom"
    suffix = "" if dicom else "." + (args.format or "nii.gz")
    inputs, outputs = _pairs(args, suffix, dicom=False, folder_out=dicom)
    from dataclasses import replace
    from functools import partial

    from wdrcodec.files import batch_threads, decode_file
    from wdrcodec.jit import ensure_compiled

    limits = replace(limits, threads=batch_threads(limits.threads, args.jobs, len(inputs)))

    ensure_compiled(quiet=args.quiet, cli=True)
    job = partial(decode_file, trust_tail=args.trust_tail, dicom=dicom)
    show = None if args.quiet else _print_decode
    return _run_all(args, job, inputs, outputs, (limits,), show)


def cmd_info(args) -> int:
    from wdrcodec.codec import read_header
    from wdrcodec.files import read_wdr

    data = read_wdr(args.input)
    h = read_header(data, name=str(args.input))
    info = {
        "file": str(args.input),
        "file_bytes": len(data),
        "complete": len(data) >= h.file_size,
        "format_version": h.version,
        "shape": list(h.shape),
        "axes": "xyz (NIfTI)" if h.axes_xyz else f"slice axis {h.slice_axis}",
        "slice_axis": h.slice_axis,
        "time_axis": h.time_axis,
        "dtype": h.dtype,
        "lossless": h.lossless and not h.dtype.startswith("float"),
        "mode": h.mode,
        "levels": h.levels,
        "packet": h.packet,
        "wavelet": "LeGall 5/3 integer"
        if h.lossless
        else (f"{h.wavelet} (PyWavelets)" if h.wavelet else "CDF 9/7 float"),
        "streams": len(h.streams) if h.streams is not None else 1,
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
        info["reversible_transform"] = h.lossless
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:>20}: {v}")
    return 0


def cmd_eval(args) -> int:
    if len(args.strip_bpv) != 1:
        raise WdrError("--strip-bpv: give one rate")
    options = {f: getattr(args, f) for f in CODING_FIELDS if f != "mode" and hasattr(args, f)}
    from wdrcodec.evaluate import check_options, evaluate, format_table
    from wdrcodec.files import check_input, check_output, volume_layout

    check_options(args.modes, not args.no_lossless, options)  # before any file is opened
    check_input(args.input, folder_ok=True)
    for opt in ("json", "plot", "strip"):
        if getattr(args, opt) is not None:
            check_output(getattr(args, opt), [args.input], what=f"--{opt}")
    from wdrcodec.io import read_volume

    vol = read_volume(args.input)
    array, kw = volume_layout(vol)
    kw.pop("affine", None)
    rows = evaluate(array, args.bpv, args.modes, lossless=not args.no_lossless, **kw, **options)
    title = f"{args.input} {vol.array.shape} {vol.array.dtype}"
    print(format_table(rows, title, wavelet=options.get("wavelet")))
    if args.plot is not None or args.strip is not None:
        from wdrcodec.evaluate import pictures

        for path in pictures(
            array,
            rows,
            kw,
            options,
            args.plot,
            args.strip,
            args.strip_bpv[0],
            title=str(args.input),
        ):
            print(f"wrote {path}")
    if args.json:
        from medshared.io import atomic_write_text

        atomic_write_text(args.json, json.dumps([r.as_dict() for r in rows], indent=2))
    return 0


def cmd_bench(args) -> int:
    from wdrcodec.bench import SECTIONS, picture_paths, run_bench
    from wdrcodec.files import check_output

    sections = args.sections or SECTIONS
    if args.json is not None:
        check_output(args.json, [], what="--json")
    if args.plots is not None:
        if not args.plots.is_dir():
            raise WdrError(f"--plots {args.plots}: not an existing folder")
        if "rd" not in sections:
            raise WdrError("--plots: the pictures come from the rd section; add rd to --sections")
        for path in picture_paths(args.plots):
            check_output(path, [], what="--plots")
    return run_bench(
        quick=args.quick,
        json_path=args.json,
        plots=args.plots,
        strip_bpv=args.strip_bpv,
        sections=sections,
    )


def cmd_demo(args) -> int:
    import tempfile

    from medshared.demo import format_table
    from wdrcodec.demo import demo_rows

    if args.summary_json is not None:
        from wdrcodec.files import check_output

        check_output(args.summary_json, [], what="--summary-json")
    if args.out_dir is not None and not args.out_dir.is_dir():
        raise WdrError(f"--out-dir {args.out_dir}: not an existing folder")
    with tempfile.TemporaryDirectory(prefix="wdrcodec-demo-") as tmp:
        rows = demo_rows(args.out_dir or Path(tmp), args.quick)
    print(format_table(rows))
    if args.summary_json is not None:
        from medshared.io import atomic_write_text

        atomic_write_text(args.summary_json, json.dumps([r.to_json() for r in rows], indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on a user error, printed as one line)."""
    return run_cli(build_parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
