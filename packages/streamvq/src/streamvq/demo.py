"""The demo: train all five models briefly on synthetic bundles, evaluate, perturb, embed.

Budget (equal for every model, stated in the output): ``DEMO_STEPS`` Adam updates (lr
``DEMO_LR``) at batch ``DEMO_BATCH`` of a demo-sized network (``DEMO_MODEL``: hidden 32, residual
hidden 8, 2 residual layers, codebook 128 x 64; the paper's settings otherwise: temperature 10,
sigma 2, commitment 0.25, decay 0.99), so that the whole demo fits in about two minutes on two
idle CPU cores. Why this config: a usable reconstruction needs on the order of a thousand
updates, not tens (40 updates x batch 16 of a 64/16-channel network left every model 20-50 mm
off); the narrow network, the batch of 8 and the 128-vector codebook (the codebook matmuls
dominate a VQ-Diff update) make an update ~5x cheaper, which buys the updates. ``streamvq
train`` keeps the paper's defaults (128/32 channels, codebook 512 x 64, batch 256, 15k updates). Evaluation: held-out synthetic subjects
and dipy's real ``minimal_bundles`` (5 subjects x 3 tracts x 50 streamlines), BUAN with one
cluster per streamline at 0.05 normalised units (the paper's setting) and at 1/2/4 mm, MDF in mm;
latent perturbation sweep after the bottleneck; a 2D embedding of the latents.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np

from streamvq.config import MODEL_NAMES, EvalConfig, ModelConfig, PrepareConfig, TrainConfig

DEMO_STEPS = 1800
DEMO_BATCH = 8
DEMO_LR = 1e-3
DEMO_MODEL = {"hidden": 32, "residual_hidden": 8, "codebook_size": 128}
QUICK_STEPS = 4


def _dipy_minimal_bundles(folder: Path) -> list[Path]:
    """Extract dipy's ``minimal_bundles.zip`` (shipped in the wheel) into ``folder``."""
    import dipy

    z = Path(dipy.__file__).parent / "data" / "files" / "minimal_bundles.zip"
    if not z.is_file():
        return []
    with zipfile.ZipFile(z) as archive:
        archive.extractall(folder)
    return sorted(folder.glob("sub_*/*.trk"))


def _demo_threads(available: int) -> int:
    """Torch threads for the demo: 2 on an idle machine, 1 when the cores are already busy.

    The demo's convolutions are small; on an oversubscribed machine a second OpenMP thread
    spin-waits (measured: the AE's 1800 updates took 164 s with 2 threads at load ~4.7 vs 25 s
    with 1).
    """
    import os

    try:
        busy = os.getloadavg()[0] >= 1.5
    except (AttributeError, OSError):  # no load average on this platform
        busy = False
    return 1 if busy else max(1, min(2, available))


def _overall(table) -> str:  # noqa: ANN001
    """One line per model, every column of a :class:`~streamvq.evaluate.ReconTable`, overall."""
    head = ["model", *table.columns]
    rows = [head] + [[m, *(f"{table.values[m][c]['overall'][0]:.3f} ± "
                           f"{table.values[m][c]['overall'][1]:.3f}" for c in table.columns)]
                     for m in table.values]
    w = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(n) for c, n in zip(r, w, strict=True)) for r in rows)


def demo_rows(out_dir: Path, quick: bool) -> list:
    """Run the demo under ``out_dir``; print its tables; return the headline rows."""
    import torch

    from medshared.demo import ResultRow
    from streamvq.codec import decode_set, encode_file, write_tractogram
    from streamvq.dataset import write_dataset
    from streamvq.embedding import embed_2d, plot_embedding
    from streamvq.evaluate import evaluate_models
    from streamvq.grouping import to_tensor_layout
    from streamvq.perturb import format_sweep, perturbation_sweep, plot_sweep
    from streamvq.prepare import group_bundle, prepare_synthetic, sources_from_files
    from streamvq.train import load_trained, train_model

    torch.set_num_threads(_demo_threads(torch.get_num_threads()))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    n_subj = 3 if quick else 10
    ds = prepare_synthetic(n_subj, (40, 160), PrepareConfig(val_fraction=0.2), seed=0)
    write_dataset(out_dir / "synthetic.h5", ds)
    print(f"synthetic data: {len(ds.train)} train / {len(ds.validation)} held-out groups of "
          f"(3, 64, 64), {len(ds.tract_names)} tracts, {n_subj} subjects; 0.05 normalised = "
          f"{0.05 * ds.norm.mm_per_unit:.2f} mm")
    steps = QUICK_STEPS if quick else DEMO_STEPS
    width = dict(hidden=16, residual_hidden=4, codebook_size=32) if quick else DEMO_MODEL
    tc = TrainConfig(steps=steps, batch_size=DEMO_BATCH, lr=DEMO_LR,
                     log_every=max(steps // 4, 1), save_every=steps, seed=0)
    print(f"budget per model: {steps} updates x batch {DEMO_BATCH}, Adam lr {tc.lr}, "
          f"demo-sized model {width} (paper defaults otherwise)")
    models = {}
    for name in MODEL_NAMES:
        mc = ModelConfig(model=name, **width)  # type: ignore[arg-type]
        res = train_model(ds, out_dir / f"run_{name}", mc, tc, device="cpu", quiet=True)
        models[name] = load_trained(res.export)
        print(f"  {name:7s} {res.seconds:5.1f} s  last loss {res.final_loss:.4f}  "
              f"val MSE {res.val_mse if res.val_mse is None else round(res.val_mse, 4)}")
    # held-out synthetic groups
    val = ds.validation
    if len(val) > (8 if quick else 16):
        val = val.subset(np.arange(len(val)) % max(len(val) // (8 if quick else 16), 1) == 0)
    labels = [val.tract_names[t] for t in val.tract]
    ecfg = EvalConfig()
    syn = evaluate_models(models, val.bundles, labels, ds.norm, ecfg)
    print(f"\nTable 1 (synthetic, {len(val)} held-out groups), overall mean ± sd:")
    print(_overall(syn))
    print(f"\nper tract (synthetic, {len(val)} held-out groups): mean ± sd")
    print(syn.format(syn.columns[0]))
    print()
    print(syn.format("MDF mm"))
    # dipy's real bundles (normalised with the training normalisation)
    real_files = _dipy_minimal_bundles(out_dir / "minimal_bundles")
    if quick:
        real_files = real_files[:3]
    real = None
    if real_files:
        srcs = sources_from_files(real_files)
        cfg = PrepareConfig()
        groups, rlabels = [], []
        for s in srcs:
            gb = group_bundle(s.streamlines, s.space, cfg, np.random.default_rng(0), name=s.path)
            groups.append(gb.groups)
            rlabels += [s.tract] * len(gb.groups)
        rb = to_tensor_layout(ds.norm.to_unit(np.concatenate(groups)))
        real = evaluate_models(models, rb, rlabels, ds.norm, ecfg)
        print(f"\ndipy minimal_bundles ({len(rlabels)} bundles of 50 streamlines, each "
              "repeated to 64 rows), overall mean ± sd:")
        print(_overall(real))
        print("\nper tract: mean ± sd")
        print(real.format(real.columns[0]))
        print()
        print(real.format("BUAN@2mm"))
        print()
        print(real.format("MDF mm"))
        # round trip through files: encode -> decode -> .trk in the source space
        ls = encode_file(models["vqdiff"], real_files[0])
        write_tractogram(out_dir / "decoded_vqdiff.trk", decode_set(models["vqdiff"], ls), ls.space)
    # perturbation
    pert_groups = val.bundles[: (2 if quick else 6)]
    eps = (0.1, 1.0) if quick else (0.05, 0.25, 1.0)
    rows_p = perturbation_sweep(models, pert_groups, ds.norm, eps)
    print("\nlatent perturbation (eps after the bottleneck, perturbed vs unperturbed decode)")
    print(format_sweep(rows_p))
    plot_sweep(rows_p, out_dir / "perturbation.png")
    # embedding
    from streamvq.codec import encode_bundles

    coords, method = {}, "pca"
    for name, m in models.items():
        coords[name], method = embed_2d(encode_bundles(m, val.bundles))
    plot_embedding(coords, labels, out_dir / "embedding.png", method)
    from medshared.io import atomic_write_text

    atomic_write_text(out_dir / "tables.json", json.dumps(
        {"synthetic": syn.to_json(), "dipy": real.to_json() if real else None,
         "perturbation": [r.__dict__ for r in rows_p]}, indent=2) + "\n")
    print(f"\nfiles in {out_dir}: tables.json, perturbation.png, embedding.png ({method}), "
          f"decoded_vqdiff.trk, run_*/ ; demo time {time.perf_counter() - t0:.1f} s wall, "
          f"{time.process_time() - c0:.1f} s CPU")
    budget = (f"{steps} updates x batch {DEMO_BATCH}, h{width['hidden']}/"
              f"{width['residual_hidden']}, K={width['codebook_size']}")
    rows = []
    col = syn.columns[0]
    for name in models:
        rows.append(ResultRow("streamvq", "synthetic held-out", name, "BUAN@0.05norm",
                              syn.values[name][col]["overall"][0], "", budget))
        rows.append(ResultRow("streamvq", "synthetic held-out", name, "MDF",
                              syn.values[name]["MDF mm"]["overall"][0], "mm", budget))
        if real is not None:
            rows.append(ResultRow("streamvq", "dipy minimal_bundles", name, "MDF",
                                  real.values[name]["MDF mm"]["overall"][0], "mm", budget))
        pr = [r for r in rows_p if r.model == name and r.eps == eps[-1]]
        rows.append(ResultRow("streamvq", f"perturb eps={eps[-1]:g}", name, "MDF vs unperturbed",
                              pr[0].mdf_mm, "mm", ""))
    return rows
