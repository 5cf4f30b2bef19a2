"""Train the AIF-generating CNN end to end through the differentiable Tikhonov deconvolution.

Pipeline per case (the paper's Fig. 1): series ``(Z, Y, X, T)`` -> :class:`AIFNet` -> AIF
``(T,)`` -> Tikhonov/Volterra deconvolution of every brain voxel -> CBF -> rCBF (whole-brain
median) -> sigmoid at rCBF 0.38 -> soft core map -> soft-Dice loss against the core mask.
SGD with momentum, batch size 1 (one case per step and process), k-fold cross-validation.
The run's configuration and flags are in :mod:`perfdecon.train_config`, the per-case objective
is :func:`perfdecon.objective.case_loss`, and device choice and the ``torchrun`` / DDP plumbing
live in :mod:`perfdecon.distributed` (all re-exported here where public).

Command line (``perfdecon train ...`` or ``python -m perfdecon.train ...``)::

    perfdecon train --data phantom --cases 12 --epochs 10 --out runs/aif
    perfdecon train --data isles /data/ISLES2018/TRAINING --folds 5 --fold 0 --out runs/f0
    perfdecon train ... --resume            # continue from RUN_DIR/checkpoint.safetensors
    torchrun --nproc-per-node 4 -m perfdecon.train --data phantom --out runs/ddp --device cuda

Run folder (written by rank 0 only, every file atomically): ``config.json`` (the resolved
:class:`TrainConfig` + model config), ``metrics.json`` (per-epoch train loss, validation soft-Dice
loss and hard Dice) and ``checkpoint.safetensors`` (weights, SGD momentum, torch RNG state, epoch;
written after every epoch).

Reproducibility: case order and augmentation of epoch ``e`` come from
``np.random.default_rng([seed, e, ...])`` and torch is re-seeded from ``(seed, e, rank)`` at the
start of every epoch, so a resumed run repeats an uninterrupted one exactly (CPU).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from perfdecon.datasets import Fold, kfold_split
from perfdecon.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    env_rank,
    rank_order,
    rank_share,
    setup,
    shutdown,
    steps_per_rank,
    wrap_model,
)
from perfdecon.errors import PerfdeconError
from perfdecon.objective import case_loss
from perfdecon.train_config import TrainConfig, build_parser, config_from_args

CHECKPOINT_NAME = "checkpoint.safetensors"
_RESUME_FREE = {"epochs", "resume", "progress", "device", "out"}
"""Flags that may differ between a run and its resumption."""


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    run_dir, checkpoint:
        Run folder and its checkpoint file.
    history:
        One dict per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_dice``, ``seconds``.
    epochs_done, steps:
        Epochs and optimisation steps completed in total (including before a resume).
    val_dice:
        Validation hard Dice after the last epoch (None without validation cases).
    model:
        The trained :class:`~perfdecon.models.aif_net.AIFNet` (this process's copy, unwrapped).
    """

    run_dir: Path
    checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_done: int = 0
    steps: int = 0
    val_dice: float | None = None
    model: Any = None


# --------------------------------------------------------------------------------------------
# Helpers


def _seed_for(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def _make_dataset(cfg: TrainConfig):
    from perfdecon.datasets import PhantomDataset
    from perfdecon.isles import IslesDataset

    if cfg.data == "phantom":
        return PhantomDataset(
            cfg.cases or 12,
            seed=cfg.seed,
            size=cfg.size,
            n_slices=cfg.n_slices,
            n_frames=cfg.n_frames,
            noise_hu=cfg.noise_hu,
        )
    # ISLES18 series differ in length: all are cropped/padded to the first case's frame count.
    return IslesDataset(cfg.data_dir, max_cases=cfg.cases)  # type: ignore[arg-type]


def _split(cfg: TrainConfig, n: int) -> Fold:
    if cfg.folds == 1:
        return Fold(train=np.arange(n), val=np.arange(0))
    return kfold_split(n, cfg.folds, seed=cfg.seed)[cfg.fold]


class _Progress(NamedTuple):
    """Where a run stands: epochs and steps done, per-epoch metrics so far."""

    epoch: int
    step: int
    history: list[dict[str, Any]]


def _resume(cfg: TrainConfig, ckpt_path: Path, net, opt, device) -> _Progress:
    """Load weights, optimiser and RNG state from ``ckpt_path`` into ``net``/``opt``.

    Raises
    ------
    PerfdeconError
        The checkpoint was trained with a different configuration (other than the flags in
        ``_RESUME_FREE``).
    """
    from perfdecon.checkpoint import restore_training_state

    meta = restore_training_state(ckpt_path, net, opt, map_location=device)
    saved = meta.get("train_config") or {}
    mine = cfg.to_dict()
    diff = sorted(k for k in mine if k not in _RESUME_FREE and k in saved and saved[k] != mine[k])
    if diff:
        raise PerfdeconError(
            f"{ckpt_path}: was trained with a different configuration ({', '.join(diff)}); "
            "use the same flags to resume"
        )
    return _Progress(int(meta["epoch"]), int(meta["step"]), list(meta.get("history", [])))


def _loss_args(cfg: TrainConfig) -> tuple[float, float, float, float]:
    return cfg.lambda_rel, cfg.temperature, cfg.smooth_xy, cfg.smooth_t


def _validate(model, dataset, indices, device, cfg: TrainConfig, dist_info: DistInfo):
    import torch

    sums = torch.zeros(3, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        for i in rank_share(indices, dist_info):
            out = case_loss(model, dataset[int(i)], device, *_loss_args(cfg))
            sums += torch.tensor([float(out.loss), out.dice, 1.0], dtype=torch.float64)
    model.train()
    sums = all_reduce_sum(sums, device, dist_info)
    if sums[2] == 0:
        return None, None
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def _write_json(path: Path, obj: Any) -> None:
    from medshared.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------
# Training


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) one training run; see the module docstring.

    Raises
    ------
    PerfdeconError
        Bad configuration, unreadable data, a run folder that already holds a checkpoint while
        ``resume`` is False, or a checkpoint whose configuration differs from ``config``.
    """
    import torch
    from tqdm.auto import tqdm

    from perfdecon.augment import AugmentConfig, augment
    from perfdecon.checkpoint import save_aif_model
    from perfdecon.models.aif_net import AIFNet, AIFNetConfig

    cfg = config
    device, dist_info = setup(cfg.device)
    is_main = dist_info.is_main
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / CHECKPOINT_NAME
    try:
        if is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt_path.exists() and not cfg.resume:
            raise PerfdeconError(
                f"{ckpt_path} already exists; pass --resume to continue it or choose another --out"
            )
        dataset = _make_dataset(cfg)
        train_idx, val_idx = _split(cfg, len(dataset))
        if len(train_idx) == 0:
            raise PerfdeconError("no training cases left after the split; use more --cases")

        torch.manual_seed(_seed_for(cfg.seed, 7919))
        model_cfg = AIFNetConfig(
            n_frames=dataset[0].ctc.shape[-1],
            n_slices=dataset[0].ctc.shape[0],
            channels_3d=cfg.channels_3d,
            channels_2d=cfg.channels_2d,
            dropout=cfg.dropout,
            non_negative=cfg.non_negative,
        )
        net = AIFNet(config=model_cfg).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        done = _Progress(epoch=0, step=0, history=[])
        if cfg.resume and ckpt_path.exists():
            done = _resume(cfg, ckpt_path, net, opt, device)
        start_epoch, step, history = done
        model = wrap_model(net, device, dist_info)
        if is_main:
            _write_json(
                run_dir / "config.json",
                {
                    "train_config": cfg.to_dict(),
                    "model_config": model_cfg.to_dict(),
                    "world_size": dist_info.world,
                    "train_cases": [int(i) for i in train_idx],
                    "val_cases": [int(i) for i in val_idx],
                    "package": "perfdecon",
                },
            )
        aug_cfg = AugmentConfig()
        # Every rank does the same number of steps (DDP needs it): see rank_order.
        per_rank = steps_per_rank(len(train_idx), dist_info)
        bar = tqdm(
            total=(cfg.epochs - start_epoch) * per_rank,
            disable=not (cfg.progress and is_main),
            desc="train",
            unit="case",
        )
        model.train()
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            torch.manual_seed(_seed_for(cfg.seed, epoch, dist_info.rank))
            order = np.random.default_rng([cfg.seed, epoch]).permutation(train_idx)
            order = rank_order(order, dist_info)
            total = torch.zeros(2, dtype=torch.float64)
            for i in order:
                sample = dataset[int(i)]
                if cfg.augment:
                    sample = augment(
                        sample, np.random.default_rng([cfg.seed, epoch, int(i), 1]), aug_cfg
                    )
                loss = case_loss(model, sample, device, *_loss_args(cfg)).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grads = [p.grad for p in net.parameters() if p.grad is not None]
                # Gradients are identical on every rank after DDP's all-reduce, so this skip
                # decision is too. One device sync for all parameters.
                finite = not grads or bool(
                    torch.stack([torch.isfinite(g).all() for g in grads]).all()
                )
                if finite:
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                    opt.step()
                step += 1
                total += torch.tensor([float(loss.detach()), 1.0], dtype=torch.float64)
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            total = all_reduce_sum(total, device, dist_info)
            # Validation on the unwrapped network (no DDP synchronisation needed); every rank
            # scores its share of the validation cases and the sums are all-reduced.
            val_loss, val_dice = _validate(net, dataset, val_idx, device, cfg, dist_info)
            row = {
                "epoch": epoch + 1,
                "train_loss": float(total[0] / total[1]),
                "val_loss": val_loss,
                "val_dice": val_dice,
                "seconds": round(time.perf_counter() - t0, 3),
            }
            history.append(row)
            if is_main:
                bar.write(
                    f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}"
                    + (
                        ""
                        if val_dice is None
                        else f", val loss {val_loss:.4f}, val Dice {val_dice:.4f}"
                    )
                )
                save_aif_model(
                    ckpt_path,
                    net,
                    cfg.to_dict(),
                    step,
                    cfg.seed,
                    optimizer=opt,
                    extra={"epoch": epoch + 1, "history": history},
                )
                _write_json(run_dir / "metrics.json", {"history": history})
        bar.close()
        barrier(dist_info)
        return TrainResult(
            run_dir=run_dir,
            checkpoint=ckpt_path,
            history=history,
            epochs_done=cfg.epochs,
            steps=step,
            val_dice=history[-1]["val_dice"] if history else None,
            model=net,
        )
    finally:
        shutdown(dist_info)


# --------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    """``perfdecon train`` entry point; returns the exit status (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        result = train(config_from_args(args))
    except PerfdeconError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if env_rank() == 0:
        last = result.history[-1] if result.history else {}
        print(
            f"trained {result.epochs_done} epochs ({result.steps} steps); "
            f"last train loss {last.get('train_loss', float('nan')):.4f}"
            + (f", val Dice {result.val_dice:.4f}" if result.val_dice is not None else "")
            + f"; checkpoint {result.checkpoint}"
        )
    return 0


__all__ = [
    "CHECKPOINT_NAME",
    "TrainConfig",
    "TrainResult",
    "build_parser",
    "case_loss",
    "config_from_args",
    "main",
    "train",
]


if __name__ == "__main__":  # torchrun -m perfdecon.train ...
    sys.exit(main())
