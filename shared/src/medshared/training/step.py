"""One optimiser step: backward (scaled under AMP), optional clipping, skip non-finite updates."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from medshared.training._torch import torch as _torch


@dataclass(frozen=True)
class StepOutcome:
    """What :func:`optimizer_step` did.

    Attributes
    ----------
    skipped : bool
        True when the update was not applied because the loss or a gradient was not finite
        (count these and log them; a run that skips every step is diverging).
    loss : float
        The loss value (NaN/inf when skipped for that reason).
    grad_norm : float or None
        Total L2 norm of the (unscaled) gradients before clipping.
    """

    skipped: bool
    loss: float
    grad_norm: float | None


def optimizer_step(
    loss: Any,
    optimizer: Any,
    *,
    scaler: Any = None,
    parameters: Iterable[Any] | None = None,
    clip_grad_norm: float | None = None,
    zero_grad: bool = True,
) -> StepOutcome:
    """Back-propagate ``loss`` and update ``optimizer``'s parameters once.

    Parameters
    ----------
    loss:
        Scalar tensor.
    optimizer:
        The optimiser to step.
    scaler:
        A ``torch.amp.GradScaler`` (from ``Runtime.grad_scaler``); when enabled the loss is
        scaled, gradients are unscaled before clipping, and the scaler decides about inf/NaN.
    parameters:
        Parameters whose gradients are checked/clipped (default: the optimiser's).
    clip_grad_norm:
        Maximum total L2 gradient norm, or None for no clipping.
    zero_grad:
        Clear the gradients afterwards (default True).

    Backward always runs, also for a non-finite loss: under DDP every rank must take part in the
    gradient all-reduce, and a NaN on one rank then makes every rank skip the same update.
    """
    torch = _torch()
    params = list(parameters) if parameters is not None else [
        p for group in optimizer.param_groups for p in group["params"]
    ]
    loss_value = float(loss.detach().float().item())
    use_scaler = scaler is not None and scaler.is_enabled()
    if use_scaler:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    norm: float | None = None
    if grads:
        if clip_grad_norm is not None:
            total = torch.nn.utils.clip_grad_norm_(params, float(clip_grad_norm))
        else:
            total = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])
            )
        norm = float(total.item())
    finite = math.isfinite(loss_value) and (norm is None or math.isfinite(norm))
    if use_scaler:
        scale_before = scaler.get_scale()
        scaler.step(optimizer)  # skips by itself on inf/NaN gradients
        scaler.update()
        skipped = (not finite) or scaler.get_scale() < scale_before
    elif finite:
        optimizer.step()
        skipped = False
    else:
        skipped = True
    if zero_grad:
        optimizer.zero_grad(set_to_none=True)
    return StepOutcome(skipped=skipped, loss=loss_value, grad_norm=norm)
