"""Train the AIF-generating CNN end to end through the differentiable Tikhonov deconvolution.

Pipeline per case (the paper's Fig. 1): series ``(Z, Y, X, T)`` -> :class:`AIFNet` -> AIF
``(T,)`` -> Tikhonov/Volterra deconvolution of every brain voxel -> CBF -> rCBF (whole-brain
median) -> sigmoid at rCBF 0.38 -> soft core map -> soft-Dice loss against the core mask
(:func:`perfdecon.objective.case_loss`). SGD with momentum, batch size 1 (one case per step and
process), k-fold cross-validation. The run's configuration is :mod:`perfdecon.train_config`.

The plumbing is :mod:`medshared.training`: :func:`~medshared.training.launch` (torchrun / DDP,
gloo on CPU, NCCL on CUDA), the run folder :class:`~medshared.training.RunFolder`
(``config.json``, ``metrics.jsonl``, ``last.pt``/``best.pt``/``final.pt`` with model, optimiser
and RNG states; ``--resume`` refuses a changed configuration naming the keys),
:func:`~medshared.training.optimizer_step` (clipping, non-finite updates skipped and counted),
and :func:`~medshared.training.export_model`: ``model.safetensors`` is what
``perfdecon maps --aif-model`` and ``perfdecon evaluate --checkpoint`` load.

Command line (``perfdecon train ...`` or ``python -m perfdecon.train ...``)::

    perfdecon train --data phantom --cases 12 --epochs 10 --out runs/aif
    perfdecon train --data isles --data-dir /data/ISLES2018/TRAINING --folds 5 --fold 0
    perfdecon train ... --resume                # continue from RUN_DIR/last.pt
    torchrun --nproc-per-node 4 -m perfdecon.train --data phantom --out runs/ddp --device cuda

Reproducibility: the case order of epoch ``e`` comes from the loader's sampler seeded with
``(seed, e)``, augmentation from ``np.random.default_rng([seed, e, case, 1])``, and torch is
re-seeded from ``(seed, e, rank)`` at the start of every epoch, so a resumed run repeats an
uninterrupted one exactly (CPU).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfdecon import __version__
from perfdecon.datasets import Fold, kfold_split
from perfdecon.errors import PerfdeconError
from perfdecon.objective import case_loss
from perfdecon.train_config import (
    RESUME_FREE,
    AIFNetOptions,
    TrainConfig,
    build_parser,
    config_from_args,
)

EXPORT_NAME = "model.safetensors"
"""Inference export in the run folder (``perfdecon maps --aif-model RUN/model.safetensors``)."""
MODEL_KIND = "AIFNet"
RUN_FILES = ("config.json", "split.json", "metrics.jsonl", "last.pt", "best.pt", "final.pt",
             EXPORT_NAME)
"""Files of a run folder (checked before any work: no folder/FIFO/symlink at these names)."""


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    run_dir, export:
        Run folder and its inference export (``model.safetensors``).
    history:
        One dict per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_dice``,
        ``skipped_steps``, ``seconds``.
    epochs_done, steps:
        Epochs and optimisation steps completed in total (including before a resume).
    val_dice:
        Validation hard Dice after the last epoch (None without validation cases).
    model:
        The trained :class:`~perfdecon.models.aif_net.AIFNet` (this process's copy, unwrapped).
    """

    run_dir: Path
    export: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_done: int = 0
    steps: int = 0
    val_dice: float | None = None
    model: Any = None


def _seed_for(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def _make_dataset(cfg: TrainConfig):
    from perfdecon.datasets import PhantomDataset

    if cfg.data == "phantom":
        return PhantomDataset(
            cfg.cases or 12,
            seed=cfg.seed,
            size=cfg.size,
            n_slices=cfg.n_slices,
            n_frames=cfg.n_frames,
            noise_hu=cfg.noise_hu,
        )
    from perfdecon.isles import IslesDataset

    return IslesDataset(cfg.data_dir, max_cases=cfg.cases)  # type: ignore[arg-type]


def _split(cfg: TrainConfig, n: int) -> Fold:
    if cfg.folds == 1:
        return Fold(train=np.arange(n), val=np.arange(0))
    return kfold_split(n, cfg.folds, seed=cfg.seed)[cfg.fold]


class _Indexed:
    """``dataset[indices[i]]`` as ``(case index, sample)`` (a map-style dataset for the loader)."""

    def __init__(self, dataset, indices: np.ndarray) -> None:
        self.dataset, self.indices = dataset, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = self.indices[i]
        return j, self.dataset[j]


def _first(batch: list):
    return batch[0]


def _loss_args(cfg: TrainConfig) -> tuple[float, float, float, float]:
    return cfg.lambda_rel, cfg.temperature, cfg.smooth_xy, cfg.smooth_t


def _validate(model, dataset, indices, rt, cfg: TrainConfig):
    import torch

    sums = torch.zeros(3, dtype=torch.float64, device=rt.device)
    model.eval()
    with torch.no_grad():
        for i in indices[rt.rank :: rt.world_size]:
            out = case_loss(model, dataset[int(i)], rt.device, *_loss_args(cfg),
                            aux_weight=cfg.aux_weight, core_weight=cfg.core_weight)
            sums += torch.tensor([float(out.loss), out.dice, 1.0], dtype=torch.float64,
                                 device=rt.device)
    model.train()
    sums = rt.all_reduce(sums).cpu()
    if sums[2] == 0:
        return None, None
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def _run_folder(cfg: TrainConfig, rt):
    """The run folder; non-main ranks check it before rank 0 writes ``config.json``."""
    from medshared.training import RunFolder

    kw = dict(resume=cfg.resume, allow_changes=RESUME_FREE)
    config = {"package": "perfdecon", **cfg.to_dict()}
    run = None
    if not rt.is_main:
        run = RunFolder(cfg.out, config, is_main=False, **kw)
    rt.barrier()
    if rt.is_main:
        run = RunFolder(cfg.out, config, is_main=True, **kw)
    rt.barrier()
    return run


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) one training run; see the module docstring.

    Raises
    ------
    PerfdeconError or MedsharedError
        Bad configuration, unreadable data, a run folder that already holds a run while
        ``resume`` is False, or a resume whose configuration differs.
    """
    import torch

    from medshared.io.outputs import check_output_folder
    from medshared.training import export_model, launch, optimizer_step, progress
    from perfdecon.augment import AugmentConfig, augment
    from perfdecon.models.aif_net import AIFNet, AIFNetConfig

    cfg = config
    check_output_folder(cfg.out, RUN_FILES, what="--out")  # before any work
    with launch(cfg.device) as rt:
        dataset = _make_dataset(cfg)
        train_idx, val_idx = _split(cfg, len(dataset))
        if len(train_idx) == 0:
            raise PerfdeconError("no training cases left after the split; use more --cases")
        run = _run_folder(cfg, rt)
        first = dataset[0].ctc
        model_cfg = AIFNetConfig(
            n_frames=first.shape[-1], n_slices=first.shape[0], **_options(cfg.model)
        )
        torch.manual_seed(_seed_for(cfg.seed, 7919))
        net = AIFNet(config=model_cfg).to(rt.device)
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        objects = {"model": net, "optimizer": opt}
        meta = run.resume(objects, map_location=rt.device)
        start_epoch = int(meta["epoch"]) if meta else 0
        step = int(meta["step"]) if meta else 0
        history = [r for r in run.read_metrics() if "epoch" in r] if meta else []
        if rt.is_main:
            run.write_json("split.json", {"train_cases": [int(i) for i in train_idx],
                                          "val_cases": [int(i) for i in val_idx],
                                          "world_size": rt.world_size,
                                          "model_config": model_cfg.to_dict()})
        model = rt.wrap(net)
        loader = rt.loader(_Indexed(dataset, train_idx), batch_size=1, shuffle=True,
                           seed=cfg.seed, collate_fn=_first)
        aug_cfg = AugmentConfig()
        bar = progress(total=(cfg.epochs - start_epoch) * len(loader), desc="train",
                       enabled=cfg.progress and rt.is_main, unit="case")
        model.train()
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            torch.manual_seed(_seed_for(cfg.seed, epoch, rt.rank))
            rt.set_epoch(loader, epoch)
            total = torch.zeros(3, dtype=torch.float64, device=rt.device)
            for i, sample in loader:
                if cfg.augment:
                    sample = augment(
                        sample, np.random.default_rng([cfg.seed, epoch, int(i), 1]), aug_cfg
                    )
                loss = case_loss(model, sample, rt.device, *_loss_args(cfg),
                                 aux_weight=cfg.aux_weight, core_weight=cfg.core_weight,
                                 need_dice=False).loss
                # DDP all-reduces the gradients, so every rank makes the same skip decision.
                outcome = optimizer_step(loss, opt, parameters=net.parameters(),
                                         clip_grad_norm=cfg.grad_clip or None)
                step += 1
                total += torch.tensor([outcome.loss, 1.0, float(outcome.skipped)],
                                      dtype=torch.float64, device=rt.device)
                bar.update(1)
                bar.set_postfix(loss=f"{outcome.loss:.3f}")
            total = rt.all_reduce(total).cpu()
            # Validation on the unwrapped network; every rank scores its share.
            val_loss, val_dice = _validate(net, dataset, val_idx, rt, cfg)
            row = {
                "epoch": epoch + 1,
                "train_loss": float(total[0] / total[1]),
                "val_loss": val_loss,
                "val_dice": val_dice,
                "skipped_steps": int(total[2]),
                "seconds": round(time.perf_counter() - t0, 3),
            }
            history.append({"step": step, **row})
            run.log(step, **row)
            state_meta = {"package": "perfdecon", "version": __version__, "epoch": epoch + 1,
                          "step": step, "seed": cfg.seed}
            run.save("last", objects, state_meta)
            if val_dice is not None and run.update_best("val_dice", val_dice, mode="max"):
                run.save("best", objects, state_meta)
            if rt.is_main:
                bar.write(
                    f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}"
                    + ("" if val_dice is None
                       else f", val loss {val_loss:.4f}, val Dice {val_dice:.4f}")
                    + (f", {row['skipped_steps']} skipped steps" if row["skipped_steps"] else "")
                )
        bar.close()
        final_meta = {"package": "perfdecon", "version": __version__, "epoch": cfg.epochs,
                      "step": step, "seed": cfg.seed}
        run.save("final", objects, final_meta)
        export = run.file(EXPORT_NAME)
        if rt.is_main:
            export_model(export, net, package="perfdecon", version=__version__, kind=MODEL_KIND,
                         model_config=model_cfg.to_dict(),
                         extra={"epoch": cfg.epochs, "step": step, "seed": cfg.seed,
                                "train_config": cfg.to_dict()})
        rt.barrier()
        return TrainResult(
            run_dir=run.path,
            export=export,
            history=history,
            epochs_done=cfg.epochs,
            steps=step,
            val_dice=history[-1]["val_dice"] if history else None,
            model=net,
        )


def _options(opts: AIFNetOptions) -> dict[str, Any]:
    from medshared.training import config_to_dict

    return config_to_dict(opts)


def _cmd_train(args) -> int:
    import os

    result = train(config_from_args(args))
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.history[-1] if result.history else {}
        loss = last.get("train_loss")
        print(
            f"trained {result.epochs_done} epochs ({result.steps} steps)"
            + (f"; last train loss {loss:.4f}" if loss is not None else "")
            + (f", val Dice {result.val_dice:.4f}" if result.val_dice is not None else "")
            + f"; model export {result.export}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``perfdecon train`` entry point (through :func:`medshared.runner.run_cli`)."""
    from medshared.runner import run_cli

    return run_cli(build_parser, argv)


__all__ = [
    "EXPORT_NAME",
    "MODEL_KIND",
    "RUN_FILES",
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
