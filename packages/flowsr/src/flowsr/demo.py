"""``flowsr demo`` / ``medshared demo``: train briefly on phantoms, evaluate on a held-out one.

Budget (stated in the output): SURFR-Net scaled down to 16 channels, 2 residual groups x 2 RCABs,
trained on CPU (one thread) for ``DEMO_STEPS`` (``QUICK_STEPS`` with ``quick``) Adam steps of 8
patches of 16 x 16 x 8 low-res voxels (learning rate 1e-3, larger than the paper's 1e-4 to move
at all in so few steps), on 2 CFD-like phantoms + 1 MRI-like phantom (64 x 64 x 32 voxels of
2 mm, 12 frames), then evaluated with trilinear and tricubic interpolation on a held-out geometry.
"""

from __future__ import annotations

import time
from pathlib import Path

from flowsr.config import ModelConfig, PatchConfig, PhantomConfig, PredictConfig, TrainConfig

DEMO_PHANTOM = PhantomConfig(shape_x=64, shape_y=64, shape_z=32, voxel_mm=2.0, frames=12)
DEMO_MODEL = ModelConfig(channels=16, groups=2, blocks=2, reduction=4)
DEMO_PATCH = PatchConfig(size_x=16, size_y=16, size_z=8)
DEMO_PREDICT = PredictConfig(patch_x=16, patch_y=16, patch_z=8, stride_x=14, stride_y=14,
                             stride_z=6, batch_size=16)
DEMO_STEPS = 120
QUICK_STEPS = 30
TRAIN_SEEDS = (1, 2)
MRI_SEEDS = (3,)
TEST_SEED = 1000


def demo_rows(out_dir: Path, quick: bool) -> list:
    """Run the demo; write the run folder and figures under ``out_dir``; return headline rows."""
    import torch

    from flowsr.evaluate import evaluate, format_table, save_figures
    from flowsr.train import load_trained, train
    from flowsr.workflows import descending_plane, held_out_case, phantom_training_set
    from medshared.demo import ResultRow

    # one thread: on the shared, oversubscribed 2-core machine 2 threads were far slower
    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = QUICK_STEPS if quick else DEMO_STEPS
    t0, c0 = time.perf_counter(), time.process_time()
    series = phantom_training_set(TRAIN_SEEDS, MRI_SEEDS, DEMO_PHANTOM)
    cfg = TrainConfig(model=DEMO_MODEL, batch_size=8, steps=steps, lr=1e-3, log_every=10,
                      save_every=max(steps, 1), device="cpu")
    run_dir = out_dir / f"run-{int(time.time() * 1000)}"
    res = train(cfg, series, run_dir, patch=DEMO_PATCH, quiet=True)
    model = load_trained(res.export)
    case = held_out_case(TEST_SEED, DEMO_PHANTOM)
    ev = evaluate(case.phantom.velocity, case.phantom.mask, case.series.lr_velocity,
                  case.series.scale, {"SURFR-Net": model}, case.frames,
                  descending_plane(case.phantom.geometry), case.phantom.dx_mm,
                  predict_config=DEMO_PREDICT)
    save_figures(ev, out_dir)
    wall = time.perf_counter() - t0
    print(f"flowsr demo: trained SURFR-Net (16 ch, 2x2 RCAB) for {res.steps} steps of 8 patches "
          f"on CPU in {res.seconds:.0f} s (final loss {res.final_loss:.4f}); held-out phantom "
          f"seed {TEST_SEED}; total {wall:.0f} s wall, {time.process_time() - c0:.0f} s CPU")
    print(format_table(ev))
    rows = []
    case_name = f"held-out phantom (seed {TEST_SEED}), peak systole"
    peak = next(iter(dict.fromkeys(r.frame_label for r in ev.results)))
    by = {(r.method, r.frame_label): r for r in ev.results}
    tri = by[("trilinear", peak)].metrics
    net = by[("SURFR-Net", peak)].metrics
    method = f"SURFR-Net ({res.steps} CPU steps)"
    rows.append(ResultRow("flowsr", case_name, method, "relative error", net.rel_error, "%",
                          f"trilinear {tri.rel_error:.2f}"))
    rows.append(ResultRow("flowsr", case_name, method, "PVNR", net.pvnr, "dB",
                          f"trilinear {tri.pvnr:.2f}"))
    rows.append(ResultRow("flowsr", case_name, method, "direction error", 1e3 * net.dir_error,
                          "1e-3", f"trilinear {1e3 * tri.dir_error:.1f}"))
    if net.iou is not None:
        rows.append(ResultRow("flowsr", case_name, method, "IoU", net.iou, "",
                              "paper 0.959 (after full training)"))
    return rows
