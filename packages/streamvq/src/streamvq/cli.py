"""``streamvq``: prepare, train, encode, decode, interpolate, evaluate, perturb, bench, demo.

Only parsing and printing live here; every command calls the library (heavy imports inside the
command functions so ``--help`` stays fast).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medshared.runner import run_cli
from medshared.training.config import add_config_arguments, config_from_args
from streamvq import __version__
from streamvq.config import EvalConfig, ModelConfig, PrepareConfig, TrainConfig


def _int_at_least(lo: int, flag: str):  # noqa: ANN202
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{flag} must be >= {lo}, got {v}")
        return v

    return parse


def _positive_float(flag: str, hi: float):  # noqa: ANN202
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects a number, got {text!r}") from None
        if not (0 < v <= hi):
            raise argparse.ArgumentTypeError(
                f"{flag} must be a positive finite number <= {hi:g}, got {text!r}")
        return v

    return parse


def _check_out(path: str, inputs=(), what: str = "--out") -> Path:  # noqa: ANN001
    from medshared.io.outputs import check_output_path

    return check_output_path(path, [i for i in inputs if i], what=what)


def _load(path: str, device: str = "cpu"):  # noqa: ANN202
    from streamvq.train import load_trained

    return load_trained(path, device=device)


def _models_arg(items: list[str]) -> dict[str, str]:
    """``NAME=PATH`` or ``PATH`` (name = the export's kind) -> {name: path}."""
    out: dict[str, str] = {}
    for it in items:
        name, _, path = it.rpartition("=")
        out[name or f"#{len(out)}"] = path
    return out


def _load_models(items: list[str]) -> dict:
    from streamvq.train import load_trained

    models = {}
    for name, path in _models_arg(items).items():
        m = load_trained(path)
        models[m.kind if name.startswith("#") else name] = m
    return models


# -- commands ---------------------------------------------------------------------------------
def cmd_prepare(args: argparse.Namespace) -> int:
    from streamvq.dataset import write_dataset
    from streamvq.errors import StreamvqError
    from streamvq.prepare import (
        prepare_authors,
        prepare_sources,
        prepare_synthetic,
        sources_from_files,
    )

    cfg = config_from_args(PrepareConfig, args)
    chosen = sum([bool(args.inputs), args.synthetic is not None, args.authors_pt is not None])
    if chosen != 1:
        raise StreamvqError("prepare: give bundle files, or --synthetic N, or --authors-pt FILE "
                            "(exactly one)")
    out = _check_out(args.out, [*args.inputs, args.authors_pt, args.reference])
    if args.inputs:
        ds = prepare_sources(sources_from_files(args.inputs, args.reference), cfg,
                             show_progress=not args.quiet)
    elif args.synthetic is not None:
        ds = prepare_synthetic(args.synthetic, tuple(args.synthetic_streamlines), cfg,
                               seed=args.synthetic_seed)
    else:
        ds = prepare_authors(args.authors_pt, cfg)
    write_dataset(out, ds)
    r = ds.report
    print(f"wrote {out}: {len(ds)} bundle tensors {tuple(ds.bundles.shape[1:])} "
          f"({int((~ds.val).sum())} train, {int(ds.val.sum())} validation) from "
          f"{r.get('bundles', 0)} bundles, {len(ds.tract_names)} tracts, "
          f"{len(ds.subject_ids)} subjects")
    print(f"normalisation: [{ds.norm.lo:.2f}, {ds.norm.hi:.2f}] mm -> [-1, 1] "
          f"(0.05 normalised = {0.05 * ds.norm.mm_per_unit:.2f} mm)")
    dropped = {k: r[k] for k in ("too_short", "non_finite", "zero_length", "outside_box",
                                 "empty_bundles", "small_bundles", "groups_removed_by_balance")
               if r.get(k)}
    if dropped:
        print("counts: " + ", ".join(f"{k}={v}" for k, v in dropped.items()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from streamvq.dataset import read_dataset
    from streamvq.train import train_model

    ds = read_dataset(args.data)
    mc = config_from_args(ModelConfig, args, streamlines=int(ds.bundles.shape[2]),
                          points=int(ds.bundles.shape[3]))
    tc = config_from_args(TrainConfig, args)
    res = train_model(ds, args.out, mc, tc, resume=args.resume, device=args.device,
                      quiet=args.quiet)
    val = "n/a" if res.val_mse is None else f"{res.val_mse:.5f}"
    print(f"trained {mc.model} for {res.steps} updates in {res.seconds:.1f} s: last loss "
          f"{res.final_loss:.5f}, validation MSE {val}, skipped updates {res.skipped}")
    print(f"export: {res.export}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from streamvq.codec import encode_file, write_latents

    out = _check_out(args.out, [args.input, args.weights, args.reference])
    model = _load(args.weights)
    ls = encode_file(model, args.input, reference=args.reference,
                     config=PrepareConfig(out_of_box=args.out_of_box))
    write_latents(out, ls)
    c = ls.counts or {}
    print(f"wrote {out}: latents {tuple(ls.latents.shape)} ({model.kind}) of "
          f"{ls.n_streamlines} streamlines; dropped: {c.get('too_short', 0)} < 2 points, "
          f"{c.get('non_finite', 0)} NaN/inf, {c.get('zero_length', 0)} zero length, "
          f"{c.get('dropped_box', 0)} outside the grid")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from streamvq.codec import decode_set, read_latents, write_tractogram
    from streamvq.prepare import read_reference

    out = _check_out(args.out, [args.input, args.weights, args.reference])
    model = _load(args.weights)
    if Path(args.input).is_file() and Path(args.input).stat().st_size == 0:
        from streamvq.errors import StreamvqError

        raise StreamvqError(f"{args.input}: empty latent file (0 bytes); expected a .npy or .h5 "
                            "from `streamvq encode`")
    ls = read_latents(args.input)
    space = read_reference(args.reference) if args.reference else ls.space
    streamlines = decode_set(model, ls)
    write_tractogram(out, streamlines, space)
    outside = ""
    if space is not None and streamlines:
        import numpy as np

        from streamvq.space import apply_box

        rep = apply_box(np.stack(streamlines), space, "keep")[2]
        if rep.checked:
            outside = f"; {rep.outside} leave the reference grid (kept)"
    print(f"wrote {out}: {len(streamlines)} streamlines decoded by the {model.kind} model"
          f"{outside}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from medshared.io.outputs import output_set
    from streamvq.codec import encode_file, interpolate, write_tractogram
    from streamvq.prepare import read_reference

    suffix = args.format
    names = [f"interp_{i:03d}.{suffix}" for i in range(args.steps)]
    inputs = [args.a, args.b, args.weights, args.reference]
    from medshared.io.outputs import check_output_folder

    check_output_folder(args.out, names, [i for i in inputs if i])
    model = _load(args.weights)
    la = encode_file(model, args.a, reference=args.reference)
    lb = encode_file(model, args.b, reference=args.reference)
    space = read_reference(args.reference) if args.reference else la.space
    steps = interpolate(model, la, lb, args.steps)
    with output_set(args.out, names, [i for i in inputs if i]) as stage:
        for name, sl in zip(names, steps, strict=True):
            write_tractogram(stage / name, sl, space)
    print(f"wrote {len(names)} tractograms to {args.out} ({names[0]} = first group of {args.a}, "
          f"{names[-1]} = first group of {args.b})")
    return 0


def _eval_data(args: argparse.Namespace):  # noqa: ANN202
    import numpy as np

    from streamvq.dataset import read_dataset

    ds = read_dataset(args.data)
    sub = {"val": ds.validation, "train": ds.train, "all": ds}[args.split]
    if args.tract:
        sub = sub.subset(np.isin(np.asarray(sub.tract_names)[sub.tract], args.tract))
    if len(sub) == 0:
        from streamvq.errors import StreamvqError

        raise StreamvqError(f"{args.data}: no bundle groups in split {args.split!r}"
                            + (f" for tracts {args.tract}" if args.tract else ""))
    if args.max_groups and len(sub) > args.max_groups:
        keep = np.random.default_rng(0).choice(len(sub), args.max_groups, replace=False)
        mask = np.zeros(len(sub), bool)
        mask[keep] = True
        sub = sub.subset(mask)
    return sub


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from medshared.io import atomic_write_text
    from streamvq.evaluate import evaluate_models

    json_out = _check_out(args.json, [args.data], "--json") if args.json else None
    png_out = _check_out(args.embedding_png, [args.data], "--embedding-png") \
        if args.embedding_png else None
    sub = _eval_data(args)
    models = _load_models(args.models)
    cfg = config_from_args(EvalConfig, args)
    labels = [sub.tract_names[t] for t in sub.tract]
    table = evaluate_models(models, sub.bundles, labels, sub.norm, cfg,
                            show_progress=not args.quiet)
    print(f"{len(sub)} bundle groups ({args.split}); BUAN with one cluster per streamline; "
          f"0.05 normalised = {0.05 * sub.norm.mm_per_unit:.2f} mm")
    print(table.format())
    if json_out:
        atomic_write_text(json_out, json.dumps(table.to_json(), indent=2) + "\n")
    if png_out:
        from streamvq.codec import encode_bundles
        from streamvq.embedding import embed_2d, plot_embedding

        coords, method = {}, "pca"
        for name, m in models.items():
            coords[name], method = embed_2d(encode_bundles(m, sub.bundles))
        plot_embedding(coords, labels, png_out, method)
        print(f"wrote {png_out} ({method})")
    return 0


def cmd_perturb(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from medshared.io import atomic_write_text
    from streamvq.perturb import format_sweep, perturbation_sweep, plot_sweep

    png = _check_out(args.png, [args.data], "--png") if args.png else None
    js = _check_out(args.json, [args.data], "--json") if args.json else None
    sub = _eval_data(args)
    models = _load_models(args.models)
    rows = perturbation_sweep(models, sub.bundles, sub.norm, args.eps)
    print(f"eps added after the bottleneck to every latent entry (+eps and -eps), "
          f"{len(sub)} groups; scores of the perturbed vs the unperturbed decode")
    print(format_sweep(rows))
    if png:
        plot_sweep(rows, png)
        print(f"wrote {png}")
    if js:
        atomic_write_text(js, json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from streamvq.bench import format_bench, run_bench

    rows = run_bench(batches=tuple(args.batch), models=tuple(args.models), repeats=args.repeats,
                     threads=args.threads, device=args.device)
    print(format_bench(rows))
    from streamvq.bench import summary

    print("geometric-mean ratio ours/authors per CPU second: " + ", ".join(
        f"{k} {v:.2f}" for k, v in summary(rows).items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streamvq",
        description="Whole-bundle streamline autoencoders (AE, VAE, VQ-VAE, VQ-EMA, VQ-Diff).",
    )
    p.add_argument("--version", action="version", version=f"streamvq {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("prepare", help="tractograms -> HDF5 dataset of (3, 64, 64) bundles")
    s.add_argument("inputs", nargs="*", help="bundle files SUBJECT/TRACT.trk|.tck|.trx "
                   "(subject = folder name, tract = file stem)")
    s.add_argument("--out", required=True, help="dataset file to write (.h5)")
    s.add_argument("--reference", help="NIfTI/.trk/.trx giving the space of .tck inputs "
                   "(default: none; .trk/.trx carry their own space)")
    s.add_argument("--synthetic", type=_int_at_least(1, "--synthetic"), metavar="N",
                   help="use N synthetic subjects (12 tracts each) instead of files "
                        "(default: off)")
    s.add_argument("--synthetic-streamlines", type=_int_at_least(1, "--synthetic-streamlines"),
                   nargs=2, default=[40, 200], metavar=("LO", "HI"),
                   help="streamlines per synthetic bundle, range (default: 40 200)")
    s.add_argument("--synthetic-seed", type=_int_at_least(0, "--synthetic-seed"), default=0,
                   help="seed of the synthetic generator (default: 0)")
    s.add_argument("--authors-pt", help="the authors' processed_tracts.pt (or its _part_N files) "
                   "(default: off)")
    s.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    add_config_arguments(s, PrepareConfig)
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("train", help="train one model on a prepared dataset")
    s.add_argument("--data", required=True, help="dataset from `streamvq prepare` (.h5)")
    s.add_argument("--out", required=True, help="run folder (config, metrics, checkpoints, export)")
    s.add_argument("--resume", action="store_true",
                   help="continue the run in --out (default: off, start a new run)")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    s.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    add_config_arguments(s, ModelConfig, exclude=("streamlines", "points"))
    add_config_arguments(s, TrainConfig)
    s.set_defaults(func=cmd_train)

    weights_help = "model export (model.safetensors) or its run folder"
    s = sub.add_parser("encode", help="bundle file -> latent .npy/.h5")
    s.add_argument("input", help="bundle file (.trk/.tck/.trx)")
    s.add_argument("--weights", required=True, help=weights_help)
    s.add_argument("--out", required=True, help="latent file (.npy: latents only; .h5: + space)")
    s.add_argument("--reference", help="NIfTI/.trk/.trx giving the space of a .tck input "
                   "(default: none; .trk/.trx carry their own space)")
    s.add_argument("--out-of-box", choices=["drop", "keep", "clip"], default="drop",
                   help="streamlines leaving the reference grid (default: drop, counted)")
    s.set_defaults(func=cmd_encode)

    s = sub.add_parser("decode", help="latent file -> .trk/.tck/.trx in the original space")
    s.add_argument("input", help="latent file from `streamvq encode` (.h5 or .npy)")
    s.add_argument("--weights", required=True, help=weights_help)
    s.add_argument("--out", required=True, help="tractogram to write (.trk, .tck or .trx)")
    s.add_argument("--reference", help="NIfTI/.trk/.trx space (default: the one in the .h5)")
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("interpolate", help="decode the straight line between two bundles' latents")
    s.add_argument("a", help="first bundle file")
    s.add_argument("b", help="second bundle file")
    s.add_argument("--weights", required=True, help=weights_help)
    s.add_argument("--out", required=True, help="output folder (interp_000.<format> ...)")
    s.add_argument("--steps", type=_int_at_least(2, "--steps"), default=9,
                   help="number of tractograms, endpoints included (default: 9)")
    s.add_argument("--format", choices=["trk", "tck", "trx"], default="trk",
                   help="output format (default: trk)")
    s.add_argument("--reference", help="NIfTI/.trk/.trx space (default: the first bundle's)")
    s.set_defaults(func=cmd_interpolate)

    for name, helptext in (("evaluate", "BUAN/MDF reconstruction table of several models"),
                           ("perturb", "latent perturbation sweep (table + PNG)")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--data", required=True, help="dataset from `streamvq prepare` (.h5)")
        s.add_argument("--models", nargs="+", required=True, metavar="[NAME=]EXPORT",
                       help="model exports or run folders (name defaults to the model kind)")
        s.add_argument("--split", choices=["val", "train", "all"], default="val",
                       help="which groups of the dataset (default: val)")
        s.add_argument("--tract", nargs="+", help="only these tracts (default: all)")
        s.add_argument("--max-groups", type=_int_at_least(1, "--max-groups"), default=None,
                       help="score a seeded random subset of at most this many groups "
                            "(default: all)")
        s.add_argument("--json", help="also write the results as JSON here (default: off)")
        s.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
        if name == "evaluate":
            add_config_arguments(s, EvalConfig, exclude=("buan_mm_thresholds",))
            s.add_argument("--embedding-png", help="write a 2D latent embedding plot (PNG) here "
                           "(default: off)")
            s.set_defaults(func=cmd_evaluate)
        else:
            from streamvq.perturb import DEFAULT_EPS

            s.add_argument("--eps", nargs="+", type=_positive_float("--eps", 1e4),
                           default=list(DEFAULT_EPS),
                           help="eps values, latent units, in (0, 1e4] (default: "
                                f"{' '.join(map(str, DEFAULT_EPS))})")
            s.add_argument("--png", help="write the sweep plot (PNG) here (default: off)")
            s.set_defaults(func=cmd_perturb)

    s = sub.add_parser("bench", help="training it/s and encode+decode bundles/s vs the authors' code")
    s.add_argument("--batch", nargs="+", type=_int_at_least(1, "--batch"), default=[16, 64, 256],
                   help="batch sizes, bundles (default: 16 64 256)")
    s.add_argument("--models", nargs="+", default=["ae", "vqvae", "vqdiff"],
                   choices=["ae", "vae", "vqvae", "vqema", "vqdiff"],
                   help="models to time (default: ae vqvae vqdiff)")
    s.add_argument("--repeats", type=_int_at_least(1, "--repeats"), default=3,
                   help="timed repetitions per cell, best kept (default: 3)")
    s.add_argument("--threads", type=_int_at_least(1, "--threads"), default=2,
                   help="torch CPU threads (default: 2)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    s.set_defaults(func=cmd_bench)

    from medshared.demo import add_demo_command

    add_demo_command(sub, "streamvq", "streamvq.demo:demo_rows")
    return p


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    return run_cli(build_parser, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
