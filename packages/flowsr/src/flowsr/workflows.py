"""Building blocks shared by the CLI, the demo and the benchmark (phantom data sets)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flowsr.config import DownsampleConfig, PhantomConfig
from flowsr.datasets import TrainSeries, mri_from_phantom, series_from_phantom
from flowsr.phantom import ArchGeometry, FlowPhantom, make_phantom


def phantom_training_set(
    cfd_seeds: Sequence[int],
    mri_seeds: Sequence[int] = (),
    phantom: PhantomConfig | None = None,
    down: DownsampleConfig | None = None,
) -> list[TrainSeries]:
    """CFD-like series (velocity + segmentation) and MRI-like ones (segmentation only).

    Each seed gives one geometry; the downsampling noise is seeded with the same number.
    """
    cfg = phantom or PhantomConfig()
    out = [series_from_phantom(make_phantom(cfg, s), down, np.random.default_rng(s), f"phantom{s}")
           for s in cfd_seeds]
    out += [mri_from_phantom(make_phantom(cfg, s), down, np.random.default_rng(s), f"mri{s}")
            for s in mri_seeds]
    return out


def descending_plane(geometry: ArchGeometry, fraction: float = 0.35):
    """Flow-rate disk in the descending aorta: ``fraction`` of the way down from the arch.

    Returns ``(point_mm, normal, radius_mm)`` (normal along the flow).
    """
    s, pts, tan = geometry.centreline(0.5)
    target = np.pi * geometry.arch_radius + fraction * geometry.y_a
    k = int(np.argmin(np.abs(s - target)))
    return pts[k], tan[k], 1.25 * geometry.radius


@dataclass(frozen=True, eq=False)
class HeldOut:
    """A held-out phantom and its synthetic low-res series."""

    phantom: FlowPhantom
    series: TrainSeries

    @property
    def frames(self) -> dict[str, int]:
        """Peak systole and a diastolic frame, as in Table 1."""
        return {"peak systole": self.phantom.peak_systole_frame,
                "diastole": self.phantom.diastolic_frame}


def held_out_case(seed: int, phantom: PhantomConfig | None = None,
                  down: DownsampleConfig | None = None) -> HeldOut:
    """The test geometry (a seed not used for training)."""
    p = make_phantom(phantom or PhantomConfig(), seed)
    return HeldOut(p, series_from_phantom(p, down, np.random.default_rng(seed), f"test{seed}"))
