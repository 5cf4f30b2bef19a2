"""Every flowsr default, declared once, as typed dataclass configs.

Each field carries ``metadata={"help": "... (unit)", "min": ..., "max": ...}`` so that
``medshared.training.add_config_arguments`` can turn it into a validated CLI flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def _f(default, help: str, lo=None, hi=None):  # noqa: ANN001, ANN202 - tiny field helper
    meta: dict = {"help": help}
    if lo is not None:
        meta["min"] = lo
    if hi is not None:
        meta["max"] = hi
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PhantomConfig:
    """CFD-like aortic-arch phantom (see :mod:`flowsr.phantom`)."""

    shape_x: int = _f(96, "high-res grid size along X (voxels)", 16, 1024)
    shape_y: int = _f(96, "high-res grid size along Y (voxels)", 16, 1024)
    shape_z: int = _f(48, "high-res grid size along Z (voxels)", 8, 1024)
    voxel_mm: float = _f(1.5, "high-res isotropic voxel size (mm)", 0.1, 10.0)
    frames: int = _f(20, "cardiac frames per cycle", 1, 500)
    heart_rate_bpm: float = _f(0.0, "heart rate (beats/min); 0 = drawn in [60, 75]", 0.0, 200.0)
    radius_mm: float = _f(0.0, "lumen radius (mm); 0 = drawn in [12, 15]", 0.0, 40.0)
    peak_velocity: float = _f(0.0, "peak speed (m/s); 0 = drawn in [1.0, 1.5]", 0.0, 10.0)
    harmonics: int = _f(6, "Fourier harmonics of the flow waveform", 1, 32)
    coarctation: float = _f(-1.0, "coarctation radius reduction (fraction); -1 = random", -1.0, 0.7)
    swirl: float = _f(-1.0, "peak secondary swirl / peak axial speed; -1 = random", -1.0, 1.0)
    viscosity: float = _f(3.5e-6, "blood kinematic viscosity (m^2/s)", 1e-7, 1e-3)


@dataclass(frozen=True)
class DownsampleConfig:
    """4DFlowNet-style synthetic low-res acquisition (see :mod:`flowsr.downsample`)."""

    factor: int = _f(2, "k-space downsampling factor per axis", 1, 8)
    snr_db: float = _f(15.0, "target SNR in the fluid (dB, 20*log10(|S|/sigma))", -20.0, 80.0)
    venc_margin: float = _f(1.1, "VENC = margin * max |v| per component, rounded up", 0.5, 5.0)
    venc_step: float = _f(0.1, "VENC rounding step (m/s)", 1e-3, 10.0)
    fluid_magnitude: float = _f(1.0, "magnitude of fluid voxels (a.u.)", 1e-6, 1e6)
    tissue_magnitude: float = _f(0.0, "magnitude of non-fluid voxels (a.u.)", 0.0, 1e6)


@dataclass(frozen=True)
class PatchConfig:
    """Low-res training patches and the paper's coverage rules (see :mod:`flowsr.patches`)."""

    size_x: int = _f(32, "low-res patch size along X (voxels)", 2, 512)
    size_y: int = _f(32, "low-res patch size along Y (voxels)", 2, 512)
    size_z: int = _f(16, "low-res patch size along Z (voxels)", 2, 512)
    cfd_per_frame: int = _f(10, "CFD patches per frame", 1, 1000)
    cfd_covered: int = _f(9, "CFD patches per frame that must reach cfd_coverage", 0, 1000)
    cfd_coverage: float = _f(0.20, "CFD minimum fluid fraction of a covered patch", 0.0, 1.0)
    mri_per_frame: int = _f(5, "MRI patches per frame", 1, 1000)
    mri_coverage: float = _f(0.05, "MRI minimum fluid fraction of every patch", 0.0, 1.0)
    rotations: bool = _f(True, "add the 5 shape-keeping rotations of every CFD patch")


@dataclass(frozen=True)
class ModelConfig:
    """SURFR-Net and its ablations (see :mod:`flowsr.models.surfrnet`)."""

    channels: int = _f(64, "feature channels", 1, 1024)
    groups: int = _f(3, "RCAN residual groups", 1, 64)
    blocks: int = _f(3, "residual channel-attention blocks per group", 1, 64)
    reduction: int = _f(16, "channel-attention reduction ratio", 1, 1024)
    use_wmf: bool = _f(True, "feed the WMF map as a 4th input channel")
    segmentation: bool = _f(True, "add the segmentation head")
    interp_skip: bool = _f(
        False, "add the trilinear upsampling of the input velocity to the velocity heads "
        "(not in the paper; off = paper architecture)"
    )


@dataclass(frozen=True)
class TrainConfig:
    """One training run (see :mod:`flowsr.train`)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    alpha: float = _f(0.02, "segmentation BCE weight alpha in L1 + alpha*BCE", 0.0, 100.0)
    lr: float = _f(1e-4, "Adam learning rate, in (0, 1]", 1e-12, 1.0)
    batch_size: int = _f(32, "patches per optimisation step (all ranks together)", 1, 4096)
    steps: int = _f(2000, "optimisation steps", 1, 10_000_000)
    log_every: int = _f(10, "steps between metric log lines", 1, 1_000_000)
    save_every: int = _f(100, "steps between 'last' checkpoints", 1, 1_000_000)
    clip_grad_norm: float = _f(0.0, "gradient-norm clip (0 = off)", 0.0, 1e6)
    amp: bool = _f(True, "mixed precision (CUDA only; ignored on CPU)")
    seed: int = _f(0, "random seed", 0, 2**31 - 1)
    device: Literal["auto", "cpu", "cuda"] = field(
        default="auto", metadata={"help": "device (auto = CUDA if available)"}
    )


@dataclass(frozen=True)
class PredictConfig:
    """Whole-volume inference (see :mod:`flowsr.predict`)."""

    patch_x: int = _f(32, "low-res patch size along X (voxels)", 4, 512)
    patch_y: int = _f(32, "low-res patch size along Y (voxels)", 4, 512)
    patch_z: int = _f(16, "low-res patch size along Z (voxels)", 4, 512)
    stride_x: int = _f(28, "low-res stride along X (voxels)", 1, 512)
    stride_y: int = _f(28, "low-res stride along Y (voxels)", 1, 512)
    stride_z: int = _f(12, "low-res stride along Z (voxels)", 1, 512)
    batch_size: int = _f(8, "patches per forward pass", 1, 4096)
    threshold: float = _f(0.5, "segmentation probability threshold", 0.0, 1.0)

    def __post_init__(self) -> None:
        from flowsr.errors import FlowsrError

        for ax in "xyz":
            p, s = getattr(self, f"patch_{ax}"), getattr(self, f"stride_{ax}")
            if s > p:
                raise FlowsrError(
                    f"--stride-{ax} {s} exceeds --patch-{ax} {p}: patches would leave gaps"
                )
