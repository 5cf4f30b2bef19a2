"""AIF-generating CNN of de la Rosa et al. (the paper's Fig. 1, left block), and a selection head.

The network regresses one arterial input function (AIF) per perfusion series. Time points are
encoded as input channels. Two heads (``AIFNetConfig.head``):

``"fc"`` (default, the paper's)
    3D convolutions mix the slices, an average over z removes the slice axis (so 2 to 8 slices,
    or any other count, go through the same weights), 2D convolutions and a global average pool
    summarise the image and a fully connected layer with ``n_frames`` linear outputs emits the
    AIF. After every convolution: ReLU, average pooling (in-plane only for the 3D stage, since
    slabs are thin) and dropout, as in the paper. Nothing ties the output to the input's
    timing: it must be learned.
``"select"`` (a documented departure from the paper)
    Full-resolution 3D convolutions (ReLU, dropout; no pooling) score every voxel, a softmax over
    all voxels turns the scores into an attention map, and the AIF is the attention-weighted
    mean of the *input* curves, as in attention-based AIF selection. The output is a convex
    combination of the case's own curves, so it follows the case's bolus arrival and shape by
    construction; the network only learns where to look. The last scoring layer starts at zero,
    so an untrained model returns the mean curve of all voxels.

Shape:
    input  ``(B, T, Z, Y, X)``: concentration-time curves, time as channels (normalised, see
           :func:`perfdecon.datasets.network_input`)
    output ``(B, T)``: the AIF, one value per frame (``"fc"``: arbitrary scale, the core-lesion
           objective only sees rCBF, which does not change when the AIF is multiplied by a
           constant; ``"select"``: the input's units)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from perfdecon.datasets import DEFAULT_INPUT_PERCENTILE, LEGACY_INPUT_PERCENTILE

HEADS = ("fc", "select")
"""Output heads of :class:`AIFNet` (see the module docstring)."""


@dataclass(frozen=True)
class AIFNetConfig:
    """Everything needed to rebuild an :class:`AIFNet` (stored in checkpoints as JSON).

    Parameters
    ----------
    n_frames:
        Number of time points T (input channels and output length).
    n_slices:
        Slab thickness the model was trained on (Z). The network itself accepts any Z because it
        averages over z; :func:`perfdecon.predict.predict_aif` uses this value to cut longer
        series into slabs of this size.
    channels_3d, channels_2d:
        Output channels of the 3D and of the 2D convolution blocks.
    dropout:
        Dropout probability after every convolution block.
    non_negative:
        If True, a softplus is applied to the output so the AIF is >= 0 everywhere. This departs
        from the paper (linear output) but removes the sign ambiguity of an untrained network;
        default False (the paper's linear output). ``"fc"`` head only.
    head:
        ``"fc"`` (the paper's fully connected output) or ``"select"`` (attention-weighted mean
        of the input curves; see the module docstring). The ``"select"`` head uses
        ``channels_3d`` for its full-resolution scoring convolutions and ignores
        ``channels_2d``.
    input_percentile:
        Percentile of the per-voxel peak concentration inside the brain by which the input is
        divided (:func:`perfdecon.datasets.input_scale`). 50 (the median: tissue curves O(1))
        for new models; configs written before this field existed used 99
        (:data:`perfdecon.datasets.LEGACY_INPUT_PERCENTILE`), which left tissue curves at
        ~0.03, far below the convolution biases, so the pooled features hardly changed between cases and the FC
        head could not learn a case-specific AIF.
    """

    n_frames: int
    n_slices: int = 4
    channels_3d: tuple[int, ...] = (16, 32)
    channels_2d: tuple[int, ...] = (32, 32)
    dropout: float = 0.1
    non_negative: bool = False
    head: Literal["fc", "select"] = "fc"
    input_percentile: float = DEFAULT_INPUT_PERCENTILE

    def __post_init__(self) -> None:
        if self.n_frames < 2:
            raise ValueError(f"n_frames must be >= 2, got {self.n_frames}")
        if self.n_slices < 1:
            raise ValueError(f"n_slices must be >= 1, got {self.n_slices}")
        if not self.channels_3d or not self.channels_2d:
            raise ValueError("channels_3d and channels_2d need at least one block each")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.head == "select" and self.non_negative:
            raise ValueError("non_negative applies to the 'fc' head only (the 'select' head "
                             "already returns a weighted mean of the input curves)")
        if not 0.0 < self.input_percentile <= 100.0:
            raise ValueError(f"input_percentile must be in (0, 100], got {self.input_percentile}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["channels_3d"] = list(self.channels_3d)
        d["channels_2d"] = list(self.channels_2d)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AIFNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are rejected with a ValueError.

        A config without ``input_percentile`` (written before the field existed) gets
        :data:`LEGACY_INPUT_PERCENTILE`, the normalisation its weights were trained with; one
        without ``head`` is the ``"fc"`` head.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown AIFNetConfig keys: {sorted(unknown)}")
        kw = dict(d)
        kw.setdefault("input_percentile", LEGACY_INPUT_PERCENTILE)
        for key in ("channels_3d", "channels_2d"):
            if key in kw:
                kw[key] = tuple(int(c) for c in kw[key])
        return cls(**kw)


class AIFNet(nn.Module):
    """Regress an AIF ``(B, T)`` from a perfusion series ``(B, T, Z, Y, X)``.

    Parameters
    ----------
    n_frames, n_slices, **kwargs:
        See :class:`AIFNetConfig`; alternatively pass ``config=AIFNetConfig(...)``.

    Examples
    --------
    >>> net = AIFNet(n_frames=20, n_slices=2)
    >>> net(torch.zeros(1, 20, 2, 32, 32)).shape
    torch.Size([1, 20])
    """

    def __init__(
        self,
        n_frames: int | None = None,
        n_slices: int = 4,
        *,
        config: AIFNetConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if config is None:
            if n_frames is None:
                raise ValueError("AIFNet needs n_frames (or config=AIFNetConfig(...))")
            config = AIFNetConfig(n_frames=n_frames, n_slices=n_slices, **kwargs)
        self.config = config
        if config.head == "select":
            self.score = _scoring_convs(config)
            return
        blocks3: list[nn.Module] = []
        c_in = config.n_frames
        for c_out in config.channels_3d:
            blocks3 += [
                nn.Conv3d(c_in, c_out, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.AvgPool3d(kernel_size=(1, 2, 2), ceil_mode=True),
                nn.Dropout(config.dropout),
            ]
            c_in = c_out
        blocks2: list[nn.Module] = []
        for c_out in config.channels_2d:
            blocks2 += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(kernel_size=2, ceil_mode=True),
                nn.Dropout(config.dropout),
            ]
            c_in = c_out
        self.conv3d = nn.Sequential(*blocks3)
        self.conv2d = nn.Sequential(*blocks2)
        self.fc = nn.Linear(c_in, config.n_frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, T, Z, Y, X)`` to the AIF ``(B, T)``."""
        self._check(x)
        if self.config.head == "select":
            weights = self.attention(x)  # (B, Z, Y, X), sums to 1
            return torch.einsum("bn,btn->bt", weights.flatten(1), x.flatten(2))
        h = self.conv3d(x)  # (B, C, Z, Y', X')
        h = h.mean(dim=2)  # average pooling over z -> (B, C, Y', X')
        h = self.conv2d(h)
        h = h.mean(dim=(2, 3))  # global average pooling -> (B, C)
        out = self.fc(h)
        if self.config.non_negative:
            out = nn.functional.softplus(out)
        return out

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The ``"select"`` head's attention map ``(B, Z, Y, X)`` (softmax over all voxels)."""
        self._check(x)
        if self.config.head != "select":
            raise ValueError("attention() needs the 'select' head")
        logits = self.score(x)[:, 0]  # (B, Z, Y, X)
        return torch.softmax(logits.flatten(1), dim=1).view_as(logits)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.config.n_frames:
            raise ValueError(
                f"AIFNet expects (B, T={self.config.n_frames}, Z, Y, X), got {tuple(x.shape)}"
            )


def _scoring_convs(config: AIFNetConfig) -> nn.Sequential:
    """Full-resolution voxel scores of the ``"select"`` head: ``(B, T, Z, Y, X) -> (B, 1, ...)``."""
    layers: list[nn.Module] = []
    c_in = config.n_frames
    for c_out in config.channels_3d:
        layers += [
            nn.Conv3d(c_in, c_out, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
        ]
        c_in = c_out
    last = nn.Conv3d(c_in, 1, kernel_size=1)
    nn.init.zeros_(last.weight)  # uniform attention at initialisation
    nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


__all__ = ["HEADS", "AIFNet", "AIFNetConfig"]
