"""Configuration of a learned-AIF training run and its command-line flags.

:class:`TrainConfig` is saved as ``config.json`` in the run folder (see :mod:`perfdecon.train`);
:func:`build_parser` / :func:`config_from_args` map ``perfdecon train`` flags onto it.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from perfdecon.errors import PerfdeconError


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
        """JSON-able dict (tuples become lists); ``TrainConfig(**d)`` rebuilds the config."""
        d = dataclasses.asdict(self)
        d["channels_3d"] = list(self.channels_3d)
        d["channels_2d"] = list(self.channels_2d)
        return d


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
