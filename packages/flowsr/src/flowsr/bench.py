"""``flowsr bench``: whole-volume inference vs trilinear and vs one batched forward; a training
iteration at batch 32.

Default (quick): low-res 48 x 48 x 24 x 4 frames, SURFR-Net at 16 channels / 2 x 2 RCABs, patch
16 x 16 x 8 with stride 14, 14, 6. ``full``: the issue's 64 x 64 x 32 x 20 frames with the
paper's model (64 channels, 3 x 3) and 32 x 32 x 16 patches (stride 28, 28, 12): minutes on CPU.
"""

from __future__ import annotations

import time

import numpy as np

from flowsr.config import ModelConfig, PredictConfig


def _timed(fn, repeat: int = 1) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run_bench(quick: bool = True, device: str = "cpu") -> str:
    """Run the benchmark; return a printable report."""
    import torch

    from flowsr.baselines import interpolate
    from flowsr.losses import surfr_loss
    from flowsr.models import build_model
    from flowsr.predict import predict_series, stitch_predict
    from flowsr.wmf import wmf_feature

    torch.manual_seed(0)
    if quick:
        grid, frames = (48, 48, 24), 4
        mcfg = ModelConfig(channels=16, groups=2, blocks=2, reduction=4)
        pcfg = PredictConfig(patch_x=16, patch_y=16, patch_z=8, stride_x=14, stride_y=14,
                             stride_z=6, batch_size=16)
    else:
        grid, frames = (64, 64, 32), 20
        mcfg = ModelConfig()
        pcfg = PredictConfig(batch_size=8)
    dev = torch.device(device)
    model = build_model(mcfg).to(dev, memory_format=torch.channels_last_3d).eval()
    rng = np.random.default_rng(0)
    vel = rng.normal(0, 0.3, (3, frames, *grid)).astype(np.float32)
    scale = np.full(frames, 1.5, np.float32)
    wmf = wmf_feature(vel)
    t_tri = _timed(lambda: interpolate(vel, "trilinear"))
    t_wmf = _timed(lambda: wmf_feature(vel))
    pred = predict_series(model, vel, scale, pcfg, wmf=wmf, device=device)
    t_net = _timed(lambda: predict_series(model, vel, scale, pcfg, wmf=wmf, device=device))
    size = (pcfg.patch_x, pcfg.patch_y, pcfg.patch_z)
    allp = torch.randn(pred.patches, 4, *size).contiguous(memory_format=torch.channels_last_3d)

    def ideal() -> None:
        with torch.inference_mode():
            for i in range(0, allp.shape[0], pcfg.batch_size):
                model(allp[i : i + pcfg.batch_size].to(dev))

    t_ideal = _timed(ideal)
    t_stitch = _timed(lambda: stitch_predict(
        lambda b: (np.zeros((b.shape[0], 3, *(2 * n for n in size)), np.float32), None),
        np.zeros((frames, 4, *grid), np.float32), pcfg))
    train_model = build_model(mcfg).to(dev, memory_format=torch.channels_last_3d).train()
    opt = torch.optim.Adam(train_model.parameters(), lr=1e-4)
    x = torch.randn(32, 4, *size).to(dev).contiguous(memory_format=torch.channels_last_3d)
    tgt = torch.randn(32, 3, *(2 * n for n in size), device=dev)
    seg = (torch.rand(32, 1, *(2 * n for n in size), device=dev) > 0.5).float()
    cfd = (torch.arange(32, device=dev) % 2).float()

    def step() -> None:
        out = train_model(x)
        loss = surfr_loss(out.velocity, tgt, cfd, out.seg_logits, seg).total
        loss.backward()
        opt.step()
        opt.zero_grad()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    t_step = _timed(step)
    n_vox = frames * int(np.prod(grid))
    lines = [
        f"flowsr bench ({'quick' if quick else 'full'}; device {device}; torch threads "
        f"{torch.get_num_threads()})",
        f"volume: low-res {grid} x {frames} frames -> {tuple(2 * n for n in grid)}; model "
        f"{mcfg.channels} ch, {mcfg.groups} groups x {mcfg.blocks} RCABs; patch {size}, stride "
        f"{(pcfg.stride_x, pcfg.stride_y, pcfg.stride_z)}, {pred.patches} patches",
        f"  SURFR-Net whole volume (WMF given): {t_net:8.2f} s  "
        f"({n_vox / t_net / 1e3:.1f} k low-res voxels/s)",
        f"  ideal batched forward, all patches: {t_ideal:8.2f} s  (whole volume / ideal = "
        f"{t_net / t_ideal:.2f})",
        f"  patch extraction + stitching only:  {t_stitch:8.2f} s",
        f"  trilinear baseline:                 {t_tri:8.2f} s  (SURFR-Net / trilinear = "
        f"{t_net / t_tri:.0f}x)",
        f"  WMF feature (all frames):           {t_wmf:8.2f} s",
        f"  one training iteration, batch 32:   {t_step:8.2f} s  (forward + backward + Adam)",
    ]
    return "\n".join(lines)
