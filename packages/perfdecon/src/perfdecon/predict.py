"""Predict an AIF with a trained :class:`~perfdecon.models.aif_net.AIFNet`.

Used by ``perfdecon maps --aif-model CKPT`` and by the evaluation of the learned AIF.

Slice count: the network averages over z, so it runs on any number of slices, but it was trained
on slabs of ``n_slices`` (stored in the checkpoint). :func:`predict_aif` therefore

* runs a series with exactly ``n_slices`` slices in one pass;
* cuts a thicker series into consecutive slabs of ``n_slices`` (the last one aligned with the
  last slice, so slabs may overlap) and averages the slabs' AIFs;
* pads a thinner series to ``n_slices`` by repeating its first/last slice (edge padding).

Frames: the network has a fixed number of frames ``n_frames``. By default (``frames="fit"``) a
longer series is cut to its first ``n_frames`` frames and the predicted AIF is extended by
repeating its last value; a shorter series is padded by repeating its last frame and the AIF is
cut back to the series' length. ``frames="strict"`` raises instead.

Scale: the training objective only sees rCBF, which does not change when the AIF is multiplied by
a constant, so the network's output scale is arbitrary. With ``rescale="input_peak"`` (default)
the AIF is scaled so its peak equals the 99.9th percentile of the per-voxel peak concentration of
the series (the brightest, arterial voxels), which gives CBF/CBV in a plausible range; rCBF, the
core, MTT and Tmax do not depend on this choice. ``rescale="none"`` returns the raw output
multiplied by the input normalisation factor (series units; for the ``"select"`` head this is
the attention-weighted mean of the series' own curves).

Heads and normalisation come from the model config (:class:`~perfdecon.models.AIFNetConfig`:
``head``, ``input_percentile``); exports written before those fields existed load as the
``"fc"`` head with the 99th-percentile normalisation they were trained with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from perfdecon.errors import PerfdeconError

if TYPE_CHECKING:
    import torch

    from perfdecon.models.aif_net import AIFNet


class LoadedAIFModel(NamedTuple):
    """Result of :func:`load_aif_model` (unpacks as ``model, metadata``)."""

    model: AIFNet
    metadata: dict[str, Any]


def load_aif_model(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> LoadedAIFModel:
    """Rebuild the AIFNet of a model export (``perfdecon train``'s ``model.safetensors``).

    Reads :func:`medshared.training.export_model` files (kind ``AIFNet``), and the single-file
    checkpoints of perfdecon 0.1 (tensors ``model.*`` + metadata ``model: AIFNet``). The
    paper's linear-output model, the ``--non-negative`` one and the ``"select"`` head are
    accepted (the head is read from the stored model config). Never unpickles.

    Raises
    ------
    PerfdeconError or MedsharedError
        Unreadable file, another package's or model's file, or weights that do not fit the
        stored model configuration (the message names the file).
    """
    from medshared.io import load_checkpoint
    from perfdecon.models.aif_net import AIFNet, AIFNetConfig

    p = Path(path)
    ckpt = load_checkpoint(p, map_location=map_location)
    meta = dict(ckpt.metadata)
    if meta.get("format") == "medshared.model-export/1":
        from medshared.training import load_model_export

        export = load_model_export(p, package="perfdecon", kinds="AIFNet",
                                   map_location=map_location)
        weights, model_config = export.state_dict, export.model_config
    elif meta.get("package") == "perfdecon" and meta.get("model") == "AIFNet":  # perfdecon 0.1
        weights = {k[len("model."):]: v for k, v in ckpt.state_dict.items()
                   if k.startswith("model.")}
        model_config = meta.get("model_config")
    else:
        raise PerfdeconError(
            f"{p}: not a perfdecon AIFNet model export (package={meta.get('package')!r}, "
            f"kind={meta.get('kind', meta.get('model'))!r})"
        )
    try:
        net = AIFNet(config=AIFNetConfig.from_dict(model_config))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PerfdeconError(f"{p}: invalid model_config in metadata: {exc}") from exc
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise PerfdeconError(f"{p}: weights do not match the model config ({first})") from exc
    net.to(map_location)
    net.eval()
    return LoadedAIFModel(net, meta)


def slab_starts(n_series: int, n_model: int) -> list[int]:
    """First slice of each slab when cutting ``n_series`` slices into slabs of ``n_model``."""
    if n_series <= n_model:
        return [0]
    starts = list(range(0, n_series - n_model + 1, n_model))
    if starts[-1] != n_series - n_model:
        starts.append(n_series - n_model)
    return starts


def fit_slices(ctc: np.ndarray, n_model: int) -> list[np.ndarray]:
    """Slabs ``(n_model, Y, X, T)`` covering a series ``(Z, Y, X, T)`` (see module docstring)."""
    z = ctc.shape[0]
    if z < n_model:
        before = (n_model - z) // 2
        pad = [(before, n_model - z - before)] + [(0, 0)] * (ctc.ndim - 1)
        return [np.pad(ctc, pad, mode="edge")]
    return [ctc[s : s + n_model] for s in slab_starts(z, n_model)]


def predict_aif(
    model: str | os.PathLike[str] | AIFNet,
    ctc: np.ndarray | torch.Tensor,
    *,
    brain_mask: np.ndarray | None = None,
    device: str = "cpu",
    rescale: str = "input_peak",
    frames: str = "fit",
    allow_nonpositive_area: bool = False,
) -> np.ndarray:
    """Regress the AIF of a perfusion series.

    Parameters
    ----------
    model:
        A trained :class:`AIFNet` or the path of a model export written by
        ``perfdecon train`` (:func:`load_aif_model`).
    ctc:
        Concentration-time curves ``(Z, Y, X, T)`` (baseline-subtracted; HU for CT).
    brain_mask:
        Optional ``(Z, Y, X)`` bool used for the input normalisation (as in training).
    device:
        ``"cpu"``, ``"cuda"``...
    rescale:
        ``"input_peak"`` or ``"none"`` (see module docstring).
    frames:
        ``"fit"`` (crop/pad to the model's frame count) or ``"strict"`` (see module docstring).
    allow_nonpositive_area:
        A linear-output model (the paper's) can learn an AIF with negative lobes whose area is
        <= 0: rCBF and the core are still defined, but CBV (an area ratio) and MTT are not, so
        by default such an AIF is refused with a clear error. Pass True to get it anyway
        (e.g. to score the core with :func:`perfdecon.maps.soft_core_from_aif`).

    Returns
    -------
    np.ndarray
        AIF ``(T,)`` float64, one value per frame.

    Raises
    ------
    PerfdeconError
        Wrong dimensionality, a frame count that differs from the model's with
        ``frames="strict"``, non-finite input,
        a brain mask of the wrong shape, a predicted AIF with no positive peak, or (unless
        allowed) one with a non-positive area.
    """
    import torch

    from perfdecon.datasets import fit_frames, input_scale, network_input
    from perfdecon.models.aif_net import AIFNet

    if isinstance(model, AIFNet):
        net = model
    else:
        net = load_aif_model(model, map_location=device).model
    arr = ctc.detach().cpu().numpy() if isinstance(ctc, torch.Tensor) else np.asarray(ctc)
    if arr.ndim != 4:
        raise PerfdeconError(f"predict_aif: series must be (Z, Y, X, T), got shape {arr.shape}")
    n_frames, n_slices = net.config.n_frames, net.config.n_slices
    n_series = arr.shape[-1]
    if frames not in ("fit", "strict"):
        raise PerfdeconError(f"predict_aif: frames must be 'fit' or 'strict', got {frames!r}")
    if n_series != n_frames:
        if frames == "strict":
            raise PerfdeconError(
                f"predict_aif: the series has {n_series} frames but the AIF model was trained "
                f"for {n_frames}; resample the series or use frames='fit'"
            )
        arr = fit_frames(arr, n_frames)
    if brain_mask is not None and brain_mask.shape != arr.shape[:3]:
        raise PerfdeconError(
            f"predict_aif: brain mask shape {brain_mask.shape} does not match the series "
            f"{arr.shape[:3]}"
        )
    if not np.isfinite(arr).all():
        raise PerfdeconError("predict_aif: the series contains NaN or inf values")
    scale = input_scale(arr, brain_mask, net.config.input_percentile)
    was_training = net.training
    net.eval()
    outs = []
    with torch.no_grad():
        for slab in fit_slices(arr, n_slices):
            # Every slab is normalised with the whole series' scale so the slabs agree in units.
            x = network_input(slab, scale=scale)
            outs.append(net(x.to(device))[0].double().cpu().numpy())
    net.train(was_training)
    aif = fit_frames(np.mean(outs, axis=0) * scale, n_series)
    if not allow_nonpositive_area and not float(np.sum(aif[1:] + aif[:-1])) > 0:  # trapezoid
        raise PerfdeconError(
            "predict_aif: the learned AIF has a non-positive area (negative lobes, typical of a "
            "linear-output model), so CBV and MTT are undefined; retrain with "
            "`perfdecon train --non-negative`, or use --aif auto"
        )
    if rescale == "none":
        return aif
    if rescale != "input_peak":
        raise PerfdeconError(
            f"predict_aif: rescale must be 'input_peak' or 'none', got {rescale!r}"
        )
    peak = float(aif.max())
    if not np.isfinite(peak) or peak <= 0:
        raise PerfdeconError(
            "predict_aif: the model produced an AIF without a positive peak; the checkpoint does "
            "not suit this series (train longer or use --aif auto)"
        )
    target = float(np.percentile(arr.max(axis=-1), 99.9))
    return aif * (target / peak)
