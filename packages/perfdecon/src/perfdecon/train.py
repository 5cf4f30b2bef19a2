"""Train the AIF-generating CNN end to end through the differentiable Tikhonov deconvolution.

Pipeline per case (the paper's Fig. 1): series ``(Z, Y, X, T)`` -> :class:`AIFNet` -> AIF
``(T,)`` -> Tikhonov/Volterra deconvolution of every brain voxel -> CBF -> rCBF (whole-brain
median) -> sigmoid at rCBF 0.38 -> soft core map -> soft-Dice loss against the core mask.
SGD with momentum, batch size 1 (one case per step and process), k-fold cross-validation.

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

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfdecon.errors import PerfdeconError

CHECKPOINT_NAME = "checkpoint.safetensors"
_RESUME_FREE = {"epochs", "resume", "progress", "device", "out"}


@dataclass
class TrainConfig:
    """One training run (saved as ``config.json`` in the run folder).

    Attributes
    ----------
    data:
        ``"phantom"`` (cases from :func:`perfdecon.phantom.brain_case`) or ``"isles"``.
    data_dir:
        ISLES18 ``TRAINING`` folder (``case_N`` sub-folders) when ``data == "isles"``.
    cases:
        Number of cases (phantom: generated, default 12; ISLES: the first N, default all).
    size, n_slices, n_frames, noise_hu:
        Phantom case geometry: in-plane voxels, slices, frames (1 s apart) and noise (HU).
    epochs:
        Total number of epochs (a resumed run stops at the same total).
    lr, momentum:
        SGD learning rate and momentum (batch size 1).
    grad_clip:
        Maximum global gradient norm (0 disables); guards against the large SVD gradients of
        a nearly degenerate AIF early in training.
    folds, fold:
        k-fold cross-validation: train on the other folds, validate on fold ``fold``
        (``folds = 1``: train on everything, no validation).
    lambda_rel:
        Tikhonov regularisation relative to the largest singular value (paper: 0.3).
    temperature:
        Width of the sigmoid that turns rCBF into core probability,
        ``sigmoid((0.38 - rCBF) / temperature)``. The paper does not give it; a soft 0.1 keeps
        gradients alive when an untrained AIF puts every voxel far from the 0.38 cut-off (at
        0.02 the loss of a fresh network is often exactly 1 with zero gradient). Validation Dice
        uses the hard rule ``rCBF < 0.38`` and does not depend on it.
    smooth_xy, smooth_t:
        Spatio-temporal Gaussian smoothing (voxels, frames) of the series before the
        deconvolution in the loss, as the paper and ``perfdecon maps`` do (defaults of
        :class:`perfdecon.pipeline.PipelineConfig`); the network sees the unsmoothed series.
    augment:
        Perfusion (delay, peak scaling) + flips/rot90/noise augmentation of training cases.
    channels_3d, channels_2d, dropout, non_negative:
        :class:`~perfdecon.models.aif_net.AIFNetConfig` fields.
    out:
        Run folder.
    resume:
        Continue from ``out/checkpoint.safetensors`` if present.
    seed:
        Seeds case generation, the split, case order, augmentation, initial weights, dropout.
    device:
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    progress:
        Show a tqdm progress bar.
    """

    data: str = "phantom"
    data_dir: str | None = None
    cases: int | None = None
    size: int = 64
    n_slices: int = 4
    n_frames: int = 50
    noise_hu: float = 2.0
    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    grad_clip: float = 1.0
    folds: int = 4
    fold: int = 0
    lambda_rel: float = 0.3
    temperature: float = 0.1
    smooth_xy: float = 1.5
    smooth_t: float = 1.0
    augment: bool = True
    channels_3d: tuple[int, ...] = (16, 32)
    channels_2d: tuple[int, ...] = (32, 32)
    dropout: float = 0.1
    non_negative: bool = False
    out: str = "runs/aif"
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.data not in ("phantom", "isles"):
            raise PerfdeconError(f"--data must be 'phantom' or 'isles', got {self.data!r}")
        if self.data == "isles" and not self.data_dir:
            raise PerfdeconError("--data isles needs the ISLES18 TRAINING folder: --data isles DIR")
        if self.cases is not None and self.cases < 1:
            raise PerfdeconError(f"--cases must be >= 1, got {self.cases}")
        if self.epochs < 1:
            raise PerfdeconError(f"--epochs must be >= 1, got {self.epochs}")
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            raise PerfdeconError(
                f"need --lr > 0 and 0 <= --momentum < 1 ({self.lr}, {self.momentum})"
            )
        if self.folds < 1 or not 0 <= self.fold < max(self.folds, 1):
            raise PerfdeconError(
                f"need --folds >= 1 and 0 <= --fold < folds, got {self.fold}/{self.folds}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise PerfdeconError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        self.channels_3d = tuple(int(c) for c in self.channels_3d)
        self.channels_2d = tuple(int(c) for c in self.channels_2d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels_3d"] = list(self.channels_3d)
        d["channels_2d"] = list(self.channels_2d)
        return d


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


def _resolve_device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise PerfdeconError("--device cuda requested but CUDA is not available")
    return torch.device(name)


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised_here: bool = False


def _init_distributed(device_kind: str) -> _Dist:
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
        here = True
    return _Dist(rank=rank, world=world, local_rank=local, initialised_here=here)


def _make_dataset(cfg: TrainConfig):
    from perfdecon.data import IslesDataset, PhantomDataset

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


def _split(cfg: TrainConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    from perfdecon.data import kfold_split

    if cfg.folds == 1:
        return np.arange(n), np.arange(0)
    fold = kfold_split(n, cfg.folds, seed=cfg.seed)[cfg.fold]
    return fold.train, fold.val


def case_loss(
    model,
    sample,
    device,
    lambda_rel: float = 0.3,
    temperature: float = 0.1,
    smooth_xy: float = 0.0,
    smooth_t: float = 0.0,
):
    """Forward one case: returns ``(soft-Dice loss, hard core Dice as float, AIF (T,))``.

    The network sees ``sample.ctc``; the deconvolution sees it after the optional smoothing
    (``smooth_xy`` voxels in-plane, ``smooth_t`` frames, inside the brain mask). The loss is
    differentiable with respect to the model parameters through the Tikhonov deconvolution
    (:func:`perfdecon.maps.soft_core_from_aif`).
    """
    import torch

    from perfdecon.data import network_input
    from perfdecon.losses import soft_dice_loss
    from perfdecon.maps import soft_core_from_aif

    x = network_input(sample.ctc, sample.brain_mask).to(device)
    aif = model(x)[0]
    series = sample.ctc
    if smooth_xy > 0 or smooth_t > 0:
        from perfdecon.preprocess import smooth

        series = smooth(series, smooth_xy, smooth_t, mask=sample.brain_mask)
    ctc = torch.from_numpy(np.ascontiguousarray(series, dtype=np.float32)).to(device)
    brain = torch.from_numpy(np.ascontiguousarray(sample.brain_mask)).to(device)
    core = torch.from_numpy(np.ascontiguousarray(sample.core_mask)).to(device)
    prob = soft_core_from_aif(
        ctc, aif, sample.dt, brain, lambda_rel=lambda_rel, temperature=temperature
    )
    loss = soft_dice_loss(prob, core, mask=brain)
    with torch.no_grad():
        hard = (prob > 0.5) & brain
        inter = (hard & core).sum().item()
        denom = hard.sum().item() + (core & brain).sum().item()
        dice = 1.0 if denom == 0 else 2.0 * inter / denom
    return loss, dice, aif


def _loss_args(cfg: TrainConfig) -> tuple[float, float, float, float]:
    return cfg.lambda_rel, cfg.temperature, cfg.smooth_xy, cfg.smooth_t


def _validate(model, dataset, indices, device, cfg: TrainConfig, dist_info: _Dist):
    import torch

    sums = torch.zeros(3, dtype=torch.float64)
    model.eval()
    with torch.no_grad():
        for i in indices[dist_info.rank :: dist_info.world]:
            loss, dice, _ = case_loss(model, dataset[int(i)], device, *_loss_args(cfg))
            sums += torch.tensor([float(loss), dice, 1.0], dtype=torch.float64)
    model.train()
    if dist_info.world > 1:
        import torch.distributed as dist

        sums = sums.to(device)
        dist.all_reduce(sums)
        sums = sums.cpu()
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

    from perfdecon.checkpoint import restore_training_state, save_aif_model
    from perfdecon.data import AugmentConfig, augment
    from perfdecon.models.aif_net import AIFNet, AIFNetConfig

    cfg = config
    device = _resolve_device(cfg.device)
    dist_info = _init_distributed(device.type)
    if device.type == "cuda" and dist_info.world > 1:
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    is_main = dist_info.rank == 0
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
        history: list[dict[str, Any]] = []
        start_epoch, step = 0, 0
        if cfg.resume and ckpt_path.exists():
            meta = restore_training_state(ckpt_path, net, opt, map_location=device)
            saved = meta.get("train_config") or {}
            mine = cfg.to_dict()
            diff = sorted(
                k for k in mine if k not in _RESUME_FREE and k in saved and saved[k] != mine[k]
            )
            if diff:
                raise PerfdeconError(
                    f"{ckpt_path}: was trained with a different configuration ({', '.join(diff)}); "
                    "use the same flags to resume"
                )
            start_epoch, step = int(meta["epoch"]), int(meta["step"])
            history = list(meta.get("history", []))
        model: torch.nn.Module = net
        if dist_info.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None
            )
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
        # Every rank does the same number of steps (DDP needs it): pad the order by wrapping.
        per_rank = math.ceil(len(train_idx) / dist_info.world)
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
            order = np.resize(order, per_rank * dist_info.world)[dist_info.rank :: dist_info.world]
            total = torch.zeros(2, dtype=torch.float64)
            for i in order:
                sample = dataset[int(i)]
                if cfg.augment:
                    sample = augment(
                        sample, np.random.default_rng([cfg.seed, epoch, int(i), 1]), aug_cfg
                    )
                loss, _, _ = case_loss(model, sample, device, *_loss_args(cfg))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grads = [p.grad for p in net.parameters() if p.grad is not None]
                # Gradients are identical on every rank after DDP's all-reduce, so this skip
                # decision is too.
                finite = all(bool(torch.isfinite(g).all()) for g in grads)
                if finite:
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                    opt.step()
                step += 1
                total += torch.tensor([float(loss.detach()), 1.0], dtype=torch.float64)
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            if dist_info.world > 1:
                import torch.distributed as dist

                total = total.to(device)
                dist.all_reduce(total)
                total = total.cpu()
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
        if dist_info.world > 1:
            import torch.distributed as dist

            dist.barrier()
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
        if dist_info.initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# Command line


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the ``train`` flags to ``parser`` (or a new parser) and return it."""
    d = TrainConfig()
    p = parser or argparse.ArgumentParser(
        prog="perfdecon train",
        description="Train the AIF-generating CNN through the differentiable deconvolution.",
    )
    p.add_argument(
        "--data",
        nargs="+",
        default=["phantom"],
        metavar="KIND [DIR]",
        help="'phantom' (generated cases) or 'isles DIR' (ISLES18 TRAINING folder); default phantom",
    )
    p.add_argument(
        "--cases",
        type=int,
        default=d.cases,
        help="number of cases (phantom: default 12; ISLES: first N, default all)",
    )
    p.add_argument("--size", type=int, default=d.size, help="phantom in-plane size (voxels)")
    p.add_argument("--slices", type=int, default=d.n_slices, help="phantom slices")
    p.add_argument("--frames", type=int, default=d.n_frames, help="phantom frames (1 s apart)")
    p.add_argument("--noise-hu", type=float, default=d.noise_hu, help="phantom noise (HU)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--lr", type=float, default=d.lr, help="SGD learning rate")
    p.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum")
    p.add_argument(
        "--grad-clip", type=float, default=d.grad_clip, help="max gradient norm (0: off)"
    )
    p.add_argument("--folds", type=int, default=d.folds, help="k of k-fold CV (1: no validation)")
    p.add_argument("--fold", type=int, default=d.fold, help="validation fold index")
    p.add_argument("--lambda-rel", type=float, default=d.lambda_rel, help="Tikhonov lambda / s_max")
    p.add_argument(
        "--temperature", type=float, default=d.temperature, help="core sigmoid width (rCBF units)"
    )
    p.add_argument("--smooth-xy", type=float, default=d.smooth_xy, help="in-plane sigma (voxels)")
    p.add_argument("--smooth-t", type=float, default=d.smooth_t, help="temporal sigma (frames)")
    p.add_argument("--no-augment", action="store_true", help="disable augmentation")
    p.add_argument("--non-negative", action="store_true", help="softplus output (AIF >= 0)")
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--out", default=d.out, metavar="RUN_DIR", help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR's checkpoint")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build a :class:`TrainConfig` from parsed ``train`` flags."""
    kind, *rest = args.data
    if len(rest) > 1 or (kind == "phantom" and rest):
        raise PerfdeconError(f"--data takes 'phantom' or 'isles DIR', got {' '.join(args.data)}")
    return TrainConfig(
        data=kind,
        data_dir=rest[0] if rest else None,
        cases=args.cases,
        size=args.size,
        n_slices=args.slices,
        n_frames=args.frames,
        noise_hu=args.noise_hu,
        epochs=args.epochs,
        lr=args.lr,
        momentum=args.momentum,
        grad_clip=args.grad_clip,
        folds=args.folds,
        fold=args.fold,
        lambda_rel=args.lambda_rel,
        temperature=args.temperature,
        smooth_xy=args.smooth_xy,
        smooth_t=args.smooth_t,
        augment=not args.no_augment,
        non_negative=args.non_negative,
        dropout=args.dropout,
        out=args.out,
        resume=args.resume,
        seed=args.seed,
        device=args.device,
        progress=not args.no_progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``perfdecon train`` entry point; returns the exit status (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        result = train(config_from_args(args))
    except PerfdeconError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.history[-1] if result.history else {}
        print(
            f"trained {result.epochs_done} epochs ({result.steps} steps); "
            f"last train loss {last.get('train_loss', float('nan')):.4f}"
            + (f", val Dice {result.val_dice:.4f}" if result.val_dice is not None else "")
            + f"; checkpoint {result.checkpoint}"
        )
    return 0


if __name__ == "__main__":  # torchrun -m perfdecon.train ...
    sys.exit(main())
