"""The end-to-end training objective of the learned AIF for one case (the paper's Fig. 1).

Series ``(Z, Y, X, T)`` -> AIF network -> AIF ``(T,)`` -> Tikhonov deconvolution of every
brain voxel -> CBF -> rCBF -> sigmoid at rCBF 0.38 -> soft core -> soft-Dice loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from perfdecon.config import LAMBDA_REL, TRAIN_CORE_TEMPERATURE

if TYPE_CHECKING:
    import torch

    from perfdecon.datasets import Sample


class CaseLoss(NamedTuple):
    """Result of :func:`case_loss`.

    Attributes
    ----------
    loss:
        Soft-Dice loss, scalar tensor (differentiable w.r.t. the model parameters).
    dice:
        Hard core Dice in [0, 1] (1.0 when prediction and ground truth are both empty; NaN
        when not computed, see ``need_dice``).
    aif:
        Predicted AIF ``(T,)`` tensor, one value per frame.
    aux:
        The auxiliary term ``1 - corr(AIF, bright-voxel curve)`` (0 when its weight is 0).
    """

    loss: torch.Tensor
    dice: float
    aif: torch.Tensor
    aux: float = 0.0


AUX_TOP_FRACTION = 0.01
"""Fraction of brain voxels (highest peak enhancement) whose mean curve the auxiliary term uses."""


def bright_voxel_curve(ctc: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
    """Mean ``(T,)`` curve of the brain voxels in the top :data:`AUX_TOP_FRACTION` of peak
    enhancement (arteries, mostly): an unsupervised, input-dependent arterial reference."""
    import torch

    curves = ctc[brain]
    k = max(1, int(round(AUX_TOP_FRACTION * curves.shape[0])))
    top = torch.topk(curves.amax(-1), k).indices
    return curves[top].mean(0)


def correlation_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - Pearson correlation`` of two ``(T,)`` curves (0: same shape and timing; scale-free)."""
    a = a - a.mean()
    b = b - b.mean()
    return 1.0 - (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12)


def input_percentile(model) -> float:
    """The input normalisation percentile of ``model`` (an AIFNet or its DDP wrapper); models
    without an :class:`~perfdecon.models.AIFNetConfig` get the default of new models."""
    from perfdecon.datasets import DEFAULT_INPUT_PERCENTILE

    config = getattr(getattr(model, "module", model), "config", None)
    return float(getattr(config, "input_percentile", DEFAULT_INPUT_PERCENTILE))


def case_loss(
    model,
    sample: Sample,
    device: torch.device | str,
    lambda_rel: float = LAMBDA_REL,
    temperature: float = TRAIN_CORE_TEMPERATURE,
    smooth_xy: float = 0.0,
    smooth_t: float = 0.0,
    *,
    aux_weight: float = 0.0,
    core_weight: float = 1.0,
    need_dice: bool = True,
) -> CaseLoss:
    """Forward one case: network -> AIF -> deconvolution -> soft core -> soft-Dice loss.

    The network sees ``sample.ctc``; the deconvolution sees it after the optional smoothing
    (inside the brain mask). The loss is differentiable with respect to the model parameters
    through the Tikhonov deconvolution (:func:`perfdecon.maps.soft_core_from_aif`). The hard
    Dice thresholds the soft core at 0.5 (rCBF < 0.38) inside the brain
    (:func:`medshared.metrics.dice`).

    Parameters
    ----------
    model:
        AIF network (or its DDP wrapper) mapping ``(1, T, Z, Y, X)`` to ``(1, T)``.
    sample:
        :class:`~perfdecon.datasets.Sample` (series ``(Z, Y, X, T)``, masks ``(Z, Y, X)``,
        ``dt`` in seconds).
    device:
        Torch device (or its name) to compute on.
    lambda_rel:
        Tikhonov regularisation relative to the largest singular value.
    temperature:
        Width of the core sigmoid in rCBF units.
    smooth_xy, smooth_t:
        Gaussian smoothing sigmas of the deconvolved series (voxels in-plane, frames); 0: off.
    aux_weight:
        Weight of the optional auxiliary term ``1 - corr(AIF, bright_voxel_curve)`` added to
        the soft-Dice loss (0: the paper's loss). The soft-Dice loss on rCBF is nearly invariant
        to the AIF's scale and timing, so alone it does not make the AIF depend on the input;
        this term ties the AIF's shape and timing to the input's own bolus.
    core_weight:
        Weight of the soft-Dice (core) term, 1 by default (the paper's loss). 0 with
        ``aux_weight > 0`` trains on the auxiliary term alone (a check that the network can fit
        case-specific AIFs at all).
    need_dice:
        Compute the hard Dice. With ``core_weight = 0`` and ``need_dice=False`` the
        deconvolution is skipped altogether (it contributes no gradient) and ``dice`` is NaN.

    Returns
    -------
    CaseLoss
        ``loss`` (scalar tensor), ``dice`` (float), ``aif`` (``(T,)`` tensor).
    """
    import torch

    from medshared.metrics import dice
    from perfdecon.datasets import network_input
    from perfdecon.losses import soft_dice_loss
    from perfdecon.maps import soft_core_from_aif

    x = network_input(sample.ctc, sample.brain_mask, percentile=input_percentile(model)).to(device)
    aif = model(x)[0]
    brain = torch.from_numpy(np.ascontiguousarray(sample.brain_mask)).to(device)
    loss = aif.new_zeros(())
    hard_dice = float("nan")
    if core_weight > 0 or need_dice:
        series = sample.ctc
        if smooth_xy > 0 or smooth_t > 0:
            from perfdecon.preprocess import smooth

            series = smooth(series, smooth_xy, smooth_t, mask=sample.brain_mask)
        ctc = torch.from_numpy(np.ascontiguousarray(series, dtype=np.float32)).to(device)
        core = torch.from_numpy(np.ascontiguousarray(sample.core_mask)).to(device)
        prob = soft_core_from_aif(
            ctc, aif, sample.dt, brain, lambda_rel=lambda_rel, temperature=temperature
        )
        if core_weight > 0:
            loss = core_weight * soft_dice_loss(prob, core, mask=brain)
        with torch.no_grad():
            hard = ((prob > 0.5) & brain).cpu().numpy()
        hard_dice = float(dice(hard, sample.core_mask & sample.brain_mask))
    aux = 0.0
    if aux_weight > 0:
        raw = torch.from_numpy(np.ascontiguousarray(sample.ctc, dtype=np.float32)).to(device)
        term = correlation_distance(aif, bright_voxel_curve(raw, brain))
        loss = loss + aux_weight * term
        aux = float(term.detach())
    return CaseLoss(loss=loss, dice=hard_dice, aif=aif, aux=aux)
