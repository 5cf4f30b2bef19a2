"""Configuration of a learned-AIF training run; its flags come from the dataclass fields.

:class:`TrainConfig` is saved as ``config.json`` in the run folder (see :mod:`perfdecon.train`).
``perfdecon train`` flags are generated from it by :func:`medshared.training.add_config_arguments`
(each field's ``help``/``min``/``max`` metadata; the default is printed), and parsed back by
:func:`medshared.training.config_from_args`. The network's architecture options are one nested
:class:`AIFNetOptions` (flags ``--channels-3d``, ``--channels-2d``, ``--dropout``,
``--non-negative``, ``--head``, ``--input-percentile``), from which :class:`perfdecon.models.AIFNetConfig` is built together with
the data's frame and slice counts. Deconvolution, core and smoothing defaults come from
:mod:`perfdecon.config` (shared with ``perfdecon maps``). No torch import here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

from perfdecon.config import LAMBDA_REL, SMOOTH_T, SMOOTH_XY, TRAIN_CORE_TEMPERATURE
from perfdecon.datasets import DEFAULT_INPUT_PERCENTILE
from perfdecon.errors import PerfdeconError


def _m(help_: str, **kw) -> dict:
    return {"help": help_, **kw}


@dataclass(frozen=True)
class AIFNetOptions:
    """Architecture of :class:`perfdecon.models.AIFNet` (besides the frame/slice counts)."""

    channels_3d: tuple[int, ...] = field(
        default=(16, 32), metadata=_m("output channels of the 3D conv blocks", min=1, flag="--channels-3d")
    )
    channels_2d: tuple[int, ...] = field(
        default=(32, 32), metadata=_m("output channels of the 2D conv blocks", min=1, flag="--channels-2d")
    )
    dropout: float = field(default=0.1, metadata=_m("dropout probability", min=0.0, max=0.95, flag="--dropout"))
    non_negative: bool = field(
        default=False,
        metadata=_m("softplus output, AIF >= 0 (the paper's output is linear; fc head only)",
                    flag="--non-negative"),
    )
    head: Literal["fc", "select"] = field(
        default="fc",
        metadata=_m("output head: fc = the paper's fully connected AIF; select = "
                    "attention-weighted mean of the input curves (follows the case's bolus by "
                    "construction; a departure from the paper)", flag="--head"),
    )
    input_percentile: float = field(
        default=DEFAULT_INPUT_PERCENTILE,
        metadata=_m("the input is divided by this percentile of the brain voxels' peak "
                    "concentration, percent (50 = median: tissue curves O(1))", min=1.0,
                    max=100.0, flag="--input-percentile"),
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels_3d", tuple(int(c) for c in self.channels_3d))
        object.__setattr__(self, "channels_2d", tuple(int(c) for c in self.channels_2d))
        if not self.channels_3d or not self.channels_2d or min(
            self.channels_3d + self.channels_2d
        ) < 1:
            raise PerfdeconError("--channels-3d/--channels-2d need at least one block, each >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise PerfdeconError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.head not in ("fc", "select"):
            raise PerfdeconError(f"--head must be 'fc' or 'select', got {self.head!r}")
        if self.head == "select" and self.non_negative:
            raise PerfdeconError("--non-negative applies to --head fc only")
        if not 0.0 < self.input_percentile <= 100.0:
            raise PerfdeconError(
                f"--input-percentile must be in (0, 100], got {self.input_percentile}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """One training run (saved as ``config.json`` in the run folder).

    Attributes
    ----------
    data, data_dir:
        ``"phantom"`` (cases from :func:`perfdecon.phantom.brain_case`) or ``"isles"`` with the
        ISLES18 ``TRAINING`` folder (``case_N`` sub-folders).
    cases:
        Number of cases (phantom: generated, default 12; ISLES: the first N, default all).
    size, n_slices, n_frames, noise_hu:
        Phantom geometry: in-plane voxels, slices, frames (1 s apart), noise (HU).
    epochs, lr, momentum, grad_clip:
        SGD with momentum, batch size 1; gradient-norm clipping (0 = off) guards against the
        large SVD gradients of a nearly degenerate AIF early in training.
    folds, fold:
        k-fold cross-validation (``folds = 1``: train on everything, no validation).
    lambda_rel, temperature, smooth_xy, smooth_t:
        The loss's deconvolution and soft core (:data:`perfdecon.config.TRAIN_CORE_TEMPERATURE`
        explains the wider default) and the smoothing the maps pipeline applies.
    aux_weight, core_weight:
        Weights of the optional auxiliary term and of the soft-Dice core term of
        :func:`perfdecon.objective.case_loss` (0 and 1: the paper's soft-Dice loss alone;
        ``core_weight = 0`` trains on the auxiliary term alone).
    augment:
        Perfusion (delay, peak scaling) + flips/rot90/noise augmentation of training cases.
    model:
        Architecture options (:class:`AIFNetOptions`).
    out, resume:
        Run folder; continue from its ``last.pt``.
    seed:
        Seeds case generation, the split, case order, augmentation, initial weights, dropout.
    device:
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    progress:
        Show a progress bar (main rank only).
    """

    data: Literal["phantom", "isles"] = field(
        default="phantom", metadata=_m("training data: generated phantoms or ISLES18")
    )
    data_dir: str | None = field(
        default=None, metadata=_m("ISLES18 TRAINING folder (with --data isles)")
    )
    cases: int | None = field(
        default=None, metadata=_m("number of cases (phantom: 12; ISLES: all)", min=1)
    )
    size: int = field(default=64, metadata=_m("phantom in-plane size, voxels", min=16, max=1024))
    n_slices: int = field(default=4, metadata=_m("phantom slices", min=1, max=64, flag="--slices"))
    n_frames: int = field(
        default=50, metadata=_m("phantom frames (1 s apart)", min=10, max=1024, flag="--frames")
    )
    noise_hu: float = field(default=2.0, metadata=_m("phantom noise SD, HU", min=0.0, max=1000.0))
    epochs: int = field(default=10, metadata=_m("total epochs", min=1, max=100000))
    lr: float = field(default=0.01, metadata=_m("SGD learning rate", min=1e-9, max=10.0))
    momentum: float = field(default=0.9, metadata=_m("SGD momentum, in [0, 1)", min=0.0, max=0.999))
    grad_clip: float = field(default=1.0, metadata=_m("max gradient norm, 0 = off", min=0.0))
    folds: int = field(default=4, metadata=_m("k of k-fold CV, 1 = no validation", min=1, max=100))
    fold: int = field(default=0, metadata=_m("validation fold index", min=0))
    lambda_rel: float = field(
        default=LAMBDA_REL, metadata=_m("Tikhonov lambda / s_max, unitless", min=1e-6, max=10.0)
    )
    temperature: float = field(
        default=TRAIN_CORE_TEMPERATURE,
        metadata=_m("soft-core sigmoid width, rCBF units", min=1e-4, max=10.0),
    )
    smooth_xy: float = field(
        default=SMOOTH_XY, metadata=_m("in-plane smoothing sigma, voxels", min=0.0, max=20.0)
    )
    smooth_t: float = field(
        default=SMOOTH_T, metadata=_m("temporal smoothing sigma, frames", min=0.0, max=20.0)
    )
    aux_weight: float = field(
        default=0.0,
        metadata=_m("weight of the auxiliary term 1 - corr(AIF, mean curve of the brightest 1 %% "
                    "brain voxels); 0 = the paper's loss", min=0.0, max=100.0),
    )
    core_weight: float = field(
        default=1.0,
        metadata=_m("weight of the soft-Dice core term; 1 = the paper's loss, 0 = the auxiliary "
                    "term alone", min=0.0, max=100.0),
    )
    augment: bool = field(default=True, metadata=_m("perfusion + geometric augmentation"))
    model: AIFNetOptions = field(default_factory=AIFNetOptions)
    out: str = field(default="runs/aif", metadata=_m("run folder"))
    resume: bool = field(default=False, metadata=_m("continue the run in --out from last.pt"))
    seed: int = field(default=0, metadata=_m("random seed", min=0))
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata=_m("torch device"))
    progress: bool = field(default=True, metadata=_m("progress bar"))

    def __post_init__(self) -> None:
        if self.data not in ("phantom", "isles"):
            raise PerfdeconError(f"--data must be 'phantom' or 'isles', got {self.data!r}")
        if self.data == "isles" and not self.data_dir:
            raise PerfdeconError("--data isles needs the ISLES18 TRAINING folder: --data-dir DIR")
        if self.cases is not None and self.cases < 1:
            raise PerfdeconError(f"--cases must be >= 1, got {self.cases}")
        if self.epochs < 1:
            raise PerfdeconError(f"--epochs must be >= 1, got {self.epochs}")
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            raise PerfdeconError(
                f"need --lr > 0 and 0 <= --momentum < 1 ({self.lr}, {self.momentum})"
            )
        if self.folds < 1 or not 0 <= self.fold < self.folds:
            raise PerfdeconError(
                f"need --folds >= 1 and 0 <= --fold < folds, got {self.fold}/{self.folds}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise PerfdeconError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if not self.core_weight + self.aux_weight > 0:
            raise PerfdeconError("--core-weight and --aux-weight are both 0: nothing to train")
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", AIFNetOptions(**self.model))

    def to_dict(self) -> dict:
        """JSON-able dict (:func:`medshared.training.config_to_dict`)."""
        from medshared.training.config import config_to_dict

        return config_to_dict(self)


RESUME_FREE = ("epochs", "resume", "progress", "device", "out")
"""Fields that may differ between a run and its resumption."""


def build_parser() -> argparse.ArgumentParser:
    """The ``perfdecon train`` parser: one flag per :class:`TrainConfig` field."""
    from medshared.training.config import add_config_arguments

    p = argparse.ArgumentParser(
        prog="perfdecon train",
        description="Train the AIF-generating CNN end to end through the differentiable "
        "Tikhonov deconvolution (soft-Dice loss on the core). Run folder: config.json, "
        "metrics.jsonl, last.pt/best.pt/final.pt, model.safetensors (for maps --aif-model).",
    )
    add_config_arguments(p, TrainConfig)
    from perfdecon.train import _cmd_train

    p.set_defaults(func=_cmd_train)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build a :class:`TrainConfig` from parsed ``train`` flags."""
    from medshared.training.config import config_from_args as from_args

    return from_args(TrainConfig, args)


__all__ = ["RESUME_FREE", "AIFNetOptions", "TrainConfig", "build_parser", "config_from_args"]
