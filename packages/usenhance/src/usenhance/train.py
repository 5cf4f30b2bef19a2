"""Training of the proposed model and the baselines through ``medshared.training``.

One iteration (CycleGAN models; pix2pix drops G_L/D_L and the cycle, and conditions D on L):

1. generators: ``fake_H = G_H(L)``, ``fake_L = G_L(H)``, ``rec_L = G_L(fake_H)``,
   ``rec_H = G_H(fake_L)``; generator loss (:class:`usenhance.losses.GeneratorLoss`) with the
   discriminators frozen; Adam step of both generators;
2. discriminators: LSGAN loss on real vs detached fake images with the label-smoothing rule;
   Adam step of both discriminators.

Both optimisers have a StepLR scheduler (stepped per epoch) and their own GradScaler (enabled on
CUDA with ``amp``). Everything, with the RNG states, is saved as ``last.pt`` after every epoch;
``resume=True`` continues exactly (same batches, same dropout draws). The enhancer ``G_H`` is
exported as ``generator.safetensors`` (kind ``usenhance-generator-l2h``), ``G_L`` as
``generator_h2l.safetensors``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from usenhance.config import TrainConfig
from usenhance.data import find_pairs, find_unpaired, load_images, split_pairs
from usenhance.errors import UsenhanceError

__all__ = ["KIND_H2L", "KIND_L2H", "TrainResult", "TrainingData", "load_training_data", "train"]

KIND_L2H = "usenhance-generator-l2h"
KIND_H2L = "usenhance-generator-h2l"


@dataclass
class TrainingData:
    """Training and validation images ``(Y, X)`` in [0, 1]."""

    lows: list[np.ndarray]
    highs: list[np.ndarray]
    paired: bool
    val_lows: list[np.ndarray]
    val_highs: list[np.ndarray]


@dataclass(frozen=True)
class TrainResult:
    """What a run produced."""

    run_dir: Path
    export: Path
    epochs: int
    steps: int
    seconds: float
    last: dict[str, float]
    skipped_steps: int


def load_training_data(root: str | Path, cfg: TrainConfig) -> TrainingData:
    """Read the training split of a paired dataset, or an unpaired trainA/trainB folder.

    The split is :func:`usenhance.data.split_pairs` with ``cfg.split_seed`` and the configured
    fractions; only its train and validation parts are read.
    """
    r = Path(root)
    if (r / "trainA").is_dir() and (r / "trainB").is_dir():
        if cfg.model != "cyclegan":
            raise UsenhanceError(
                f"dataset {r}: unpaired trainA/trainB data can only train --model cyclegan "
                f"({cfg.model} needs low/high pairs)"
            )
        from usenhance.data import read_or_skip, warn_skipped

        la, lb = find_unpaired(r)
        ga, ba = read_or_skip(la)
        gb, bb = read_or_skip(lb)
        warn_skipped(ba + bb, "training")
        if not ga or not gb:
            raise UsenhanceError(f"dataset {r}: no readable images in trainA/ or trainB/")
        return TrainingData([g.frames[0] for g in ga], [g.frames[0] for g in gb], False, [], [])
    pairs = find_pairs(r)
    tr = 1.0 - cfg.val_fraction - cfg.test_fraction
    if tr <= 0:
        raise UsenhanceError("--val-fraction + --test-fraction must leave a training share > 0")
    split = split_pairs(pairs, (tr, cfg.val_fraction, cfg.test_fraction), cfg.split_seed)
    if not split.train:
        raise UsenhanceError(f"dataset {r}: the split leaves no training pairs")
    lows, highs = load_images(split.train)
    vl, vh = load_images(split.val[: cfg.val_images]) if split.val and cfg.val_images else ([], [])
    return TrainingData([x.image for x in lows], [x.image for x in highs], True,
                        [x.image for x in vl], [x.image for x in vh])


def _set_requires_grad(module: Any, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _val_l1(g_h: Any, data: TrainingData, crop: int, device: Any) -> float | None:
    """Mean |G_H(L) - H| (in [0, 1] units) on centre crops of the validation pairs."""
    import torch

    if not data.val_lows:
        return None
    from usenhance.datasets import _crop

    was = g_h.training
    g_h.eval()
    errs = []
    with torch.no_grad():
        for lo, hi in zip(data.val_lows, data.val_highs, strict=True):
            x = torch.from_numpy(_crop(lo, crop, 0.5, 0.5) * 2 - 1)[None, None].to(device)
            y = torch.from_numpy(_crop(hi, crop, 0.5, 0.5) * 2 - 1)[None, None].to(device)
            errs.append(float(torch.mean(torch.abs(g_h(x) - y)).item()) / 2)
    g_h.train(was)
    return float(np.mean(errs))


def train(data: str | Path | TrainingData, out_dir: str | Path, cfg: TrainConfig, *,
          resume: bool = False, device: str = "auto", lpips_weights: str | Path | None = None,
          quiet: bool = False) -> TrainResult:
    """Train ``cfg.model`` on ``data`` into the run folder ``out_dir``.

    Parameters
    ----------
    data : path or TrainingData
        A paired (USEnhance layout) or unpaired (trainA/trainB) dataset folder, or images already
        in memory.
    out_dir : path
        The run folder (``config.json``, ``metrics.jsonl``, ``last.pt``, ``best.pt``,
        ``final.pt``, the generator exports).
    cfg : TrainConfig
        The whole configuration.
    resume : bool
        Continue the run in ``out_dir`` from ``last.pt`` (``epochs``/``max_steps`` may grow).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    lpips_weights : path, optional
        torchvision's VGG-16 ImageNet weights for the LPIPS loss (default: torch hub cache).
    quiet : bool
        No progress bar.
    """
    import torch

    from medshared.training import (
        RunFolder,
        config_to_dict,
        export_model,
        launch,
        optimizer_step,
        progress,
    )
    from usenhance import __version__
    from usenhance.datasets import CropDataset
    from usenhance.losses import GeneratorLoss, discriminator_loss, real_label
    from usenhance.networks import Discriminators, Generators, generator_config

    t0 = time.perf_counter()
    if cfg.net.num_downs > int(math.log2(cfg.crop)):
        raise UsenhanceError(
            f"--crop {cfg.crop} is smaller than the U-Net's multiple 2**{cfg.net.num_downs}; "
            "lower --net-num-downs or raise --crop"
        )
    with launch(device=device, seed=cfg.seed) as rt:
        # data and LPIPS weights first: a bad input leaves no run folder behind
        td = data if isinstance(data, TrainingData) else load_training_data(data, cfg)
        if not td.paired and cfg.model != "cyclegan":
            raise UsenhanceError(f"{cfg.model} needs paired data")
        perceptual = None
        if cfg.uses_lpips:
            from usenhance.perceptual import build_lpips

            perceptual = build_lpips(lpips_weights, cfg.lpips_random_backbone, rt.device).module
        # non-main ranks check the folder before rank 0 writes config.json into it (else
        # they would find "a run already here"); rank 0 creates it after the barrier
        make_run = lambda: RunFolder(out_dir, config_to_dict(cfg), resume=resume,  # noqa: E731
                                     is_main=rt.is_main, allow_changes=("epochs", "max_steps"))
        run = None if rt.is_main else make_run()
        rt.barrier()
        run = make_run() if rt.is_main else run
        gens_raw, discs_raw = Generators(cfg), Discriminators(cfg)
        gens, discs = rt.wrap(gens_raw), rt.wrap(discs_raw)
        w = cfg.loss
        if cfg.cyclic:
            paired_w = w.paired if cfg.model == "cyclegan-perceptual" else 0.0
            per_w = w.perceptual if cfg.model == "cyclegan-perceptual" else 0.0
            gen_loss = GeneratorLoss(w.adv, w.cycle, paired_w, per_w, perceptual)
        else:
            gen_loss = GeneratorLoss(w.adv, 0.0, w.pix2pix_l1, 0.0, None)
        betas = (cfg.beta1, cfg.beta2)
        opt_g = torch.optim.Adam(gens_raw.parameters(), lr=cfg.lr, betas=betas)
        opt_d = torch.optim.Adam(discs_raw.parameters(), lr=cfg.lr, betas=betas)
        sched_g = torch.optim.lr_scheduler.StepLR(opt_g, cfg.lr_step_epochs, cfg.lr_gamma)
        sched_d = torch.optim.lr_scheduler.StepLR(opt_d, cfg.lr_step_epochs, cfg.lr_gamma)
        scaler_g, scaler_d = rt.grad_scaler(cfg.amp), rt.grad_scaler(cfg.amp)
        objects = {"generators": gens_raw, "discriminators": discs_raw, "opt_g": opt_g,
                   "opt_d": opt_d, "sched_g": sched_g, "sched_d": sched_d,
                   "scaler_g": scaler_g, "scaler_d": scaler_d}
        meta = run.resume(objects, map_location=rt.device)
        epoch0 = int(meta["epoch"]) if meta else 0
        step = int(meta["step"]) if meta else 0
        skipped = int(meta.get("skipped_steps", 0)) if meta else 0
        dataset = CropDataset(td.lows, td.highs, cfg.crop, paired=td.paired)
        loader = rt.loader(dataset, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=False)
        last: dict[str, float] = {}
        epoch = epoch0
        done = cfg.max_steps > 0 and step >= cfg.max_steps
        while epoch < cfg.epochs and not done:
            rt.set_epoch(loader, epoch)
            gens.train()
            discs.train()
            bar = progress(loader, desc=f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}",
                           enabled=rt.is_main and not quiet)
            for batch in bar:
                low = batch["low"].to(rt.device, non_blocking=True)
                high = batch["high"].to(rt.device, non_blocking=True)
                # -- generators (discriminators frozen, called without the DDP wrapper)
                _set_requires_grad(discs_raw, False)
                with rt.autocast(cfg.amp):
                    out = gens(low, high)
                    s_fh = discs_raw.score_high(low, out.fake_high)
                    s_fl = discs_raw.d_l(out.fake_low) if discs_raw.d_l is not None else None
                    terms = gen_loss(low, high, out.fake_high, out.fake_low, out.rec_low,
                                     out.rec_high, s_fh, s_fl)
                g_step = optimizer_step(terms.total, opt_g, scaler=scaler_g)
                _set_requires_grad(discs_raw, True)
                # -- discriminators
                fake_low = out.fake_low.detach() if out.fake_low is not None else None
                with rt.autocast(cfg.amp):
                    r_h, f_h, r_l, f_l = discs(low, high, out.fake_high.detach(), fake_low)
                    means = [rt.mean(float(r_h.detach().float().mean()))]
                    if r_l is not None:
                        means.append(rt.mean(float(r_l.detach().float().mean())))
                    target = real_label(means, w.smooth_threshold, w.smooth_label)
                    loss_d = discriminator_loss(r_h, f_h, target)
                    if r_l is not None:
                        loss_d = loss_d + discriminator_loss(r_l, f_l, target)
                d_step = optimizer_step(loss_d, opt_d, scaler=scaler_d)
                skipped += int(g_step.skipped) + int(d_step.skipped)
                step += 1
                last = {"loss_g": g_step.loss, "loss_d": d_step.loss,
                        "adv": float(terms.adv), "cycle": float(terms.cycle),
                        "paired": float(terms.paired), "perceptual": float(terms.perceptual),
                        "real_target": target}
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(g=f"{g_step.loss:.3f}", d=f"{d_step.loss:.3f}")
                if cfg.max_steps > 0 and step >= cfg.max_steps:
                    done = True
                    break
            sched_g.step()
            sched_d.step()
            epoch += 1
            val = _val_l1(gens_raw.g_h, td, cfg.crop, rt.device) if rt.is_main else None
            run.log(step, epoch=epoch, lr=sched_g.get_last_lr()[0], val_l1=val, **last)
            state_meta = {"package": "usenhance", "version": __version__, "epoch": epoch,
                          "step": step, "seed": cfg.seed, "skipped_steps": skipped}
            if val is not None and run.update_best("val_l1", val, "min"):
                run.save("best", objects, state_meta)
            run.save("last", objects, state_meta)
        run.save("final", objects, {"package": "usenhance", "version": __version__,
                                    "epoch": epoch, "step": step, "seed": cfg.seed,
                                    "skipped_steps": skipped})
        export = run.file("generator.safetensors")
        if rt.is_main:
            extra = {"model": cfg.model, "epoch": epoch, "step": step, "train_config": config_to_dict(cfg)}
            export_model(export, gens_raw.g_h, package="usenhance", version=__version__,
                         kind=KIND_L2H, model_config=generator_config(cfg.net), extra=extra)
            if gens_raw.g_l is not None:
                export_model(run.file("generator_h2l.safetensors"), gens_raw.g_l,
                             package="usenhance", version=__version__, kind=KIND_H2L,
                             model_config=generator_config(cfg.net), extra=extra)
        rt.barrier()
    return TrainResult(Path(out_dir), export, epoch, step, time.perf_counter() - t0, last, skipped)


def quick_config(model: str, **changes: Any) -> TrainConfig:
    """A small CPU configuration (64-pixel crops, ngf 16, 6 stages) for tests and the demo."""
    from usenhance.config import NetConfig

    base = TrainConfig(model=model, crop=64, net=NetConfig(ngf=16, num_downs=6, ndf=16))  # type: ignore[arg-type]
    return replace(base, **changes)
