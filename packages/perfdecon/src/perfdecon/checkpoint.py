"""AIF-network checkpoints: weights + model config + version + seed (+ training state), no pickle.

A thin layer over :func:`medshared.io.save_checkpoint` / :func:`~medshared.io.load_checkpoint`
(safetensors tensors + JSON metadata). Tensor keys:

``model.<name>``
    AIFNet weights.
``optimizer.<param index>.<state name>``
    Optimizer state tensors (SGD momentum buffers); the hyper-parameters go to the metadata.
``rng.torch_cpu`` (and ``rng.torch_cuda``)
    Torch random generator state (uint8), so a resumed run continues the same random stream.

Metadata: ``package``, ``version``, ``model`` (``"AIFNet"``), ``model_config``, ``step``,
``seed``, ``optimizer`` (type + param groups), ``train_config`` and any ``extra`` entries.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import torch
from torch import nn

from perfdecon import __version__
from perfdecon.errors import PerfdeconError
from perfdecon.models.aif_net import AIFNet, AIFNetConfig


class LoadedAIFModel(NamedTuple):
    """Result of :func:`load_aif_model` (unpacks as ``model, metadata``)."""

    model: AIFNet
    metadata: dict[str, Any]


def _unwrap(model: nn.Module) -> AIFNet:
    inner = getattr(model, "module", model)  # DistributedDataParallel wrapper
    if not isinstance(inner, AIFNet):
        raise PerfdeconError(f"expected an AIFNet, got {type(inner).__name__}")
    return inner


def save_aif_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    config: dict[str, Any] | None,
    step: int,
    seed: int,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write an AIFNet (and optionally its optimizer and RNG state) to ``path`` atomically.

    Parameters
    ----------
    path:
        Output ``.safetensors`` file.
    model:
        The :class:`AIFNet` (a DistributedDataParallel wrapper is unwrapped).
    config:
        JSON-able training configuration stored as ``train_config`` (None for none).
    step:
        Number of optimisation steps done so far.
    seed:
        Seed of the run.
    optimizer:
        If given, its state tensors and param groups are stored so training can resume.
    extra:
        More JSON-able metadata (e.g. the epoch and the metrics history).
    """
    from medshared.io import save_checkpoint

    net = _unwrap(model)
    tensors: dict[str, torch.Tensor] = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()
    }
    meta: dict[str, Any] = {
        "package": "perfdecon",
        "version": __version__,
        "model": "AIFNet",
        "model_config": net.config.to_dict(),
        "step": int(step),
        "seed": int(seed),
        "train_config": config,
    }
    if optimizer is not None:
        sd = optimizer.state_dict()
        for idx, state in sd["state"].items():
            for name, value in state.items():
                if not isinstance(value, torch.Tensor):
                    value = torch.tensor(value)
                tensors[f"optimizer.{idx}.{name}"] = value.detach().cpu().contiguous()
        meta["optimizer"] = {"type": type(optimizer).__name__, "param_groups": sd["param_groups"]}
        tensors["rng.torch_cpu"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            tensors["rng.torch_cuda"] = torch.cuda.get_rng_state()
    if extra:
        meta.update(extra)
    save_checkpoint(path, tensors, meta)


def _load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"):
    from medshared.errors import MedsharedError
    from medshared.io import load_checkpoint

    try:
        ckpt = load_checkpoint(path, map_location=map_location)
    except MedsharedError as exc:
        raise PerfdeconError(str(exc)) from exc
    meta = dict(ckpt.metadata)
    if meta.get("package") != "perfdecon" or meta.get("model") != "AIFNet":
        raise PerfdeconError(
            f"{path}: not a perfdecon AIFNet checkpoint (package={meta.get('package')!r}, "
            f"model={meta.get('model')!r})"
        )
    return ckpt.state_dict, meta


def load_aif_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> LoadedAIFModel:
    """Rebuild the AIFNet stored in ``path`` (eval mode) and return it with its metadata.

    Raises
    ------
    PerfdeconError
        Unreadable file, a checkpoint of another package/model, or weights that do not fit the
        stored model configuration.
    """
    tensors, meta = _load(path, map_location)
    try:
        net = AIFNet(config=AIFNetConfig.from_dict(meta["model_config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise PerfdeconError(f"{path}: invalid model_config in metadata: {exc}") from exc
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise PerfdeconError(f"{path}: weights do not match the model config: {exc}") from exc
    net.to(map_location)
    net.eval()
    return LoadedAIFModel(net, meta)


def restore_training_state(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load weights, optimizer state and torch RNG state from ``path`` into a live run.

    Returns the checkpoint's metadata (``step``, ``epoch``, history...).
    """
    tensors, meta = _load(path, map_location)
    net = _unwrap(model)
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise PerfdeconError(f"{path}: weights do not match the model: {exc}") from exc
    if "optimizer" not in meta:
        raise PerfdeconError(f"{path}: holds no optimizer state; cannot resume training from it")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    try:
        optimizer.load_state_dict(
            {"state": state, "param_groups": meta["optimizer"]["param_groups"]}
        )
    except (ValueError, KeyError) as exc:
        raise PerfdeconError(f"{path}: optimizer state does not fit: {exc}") from exc
    if "rng.torch_cpu" in tensors:
        torch.set_rng_state(tensors["rng.torch_cpu"].cpu().to(torch.uint8))
    if "rng.torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.torch_cuda"].cpu().to(torch.uint8))
    return meta
