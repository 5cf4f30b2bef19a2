"""``perfdecon phantom`` as a library function: one brain-like phantom case written as NIfTI files
plus its ground truth, as one set (see :func:`medshared.io.outputs.output_set`).

Files: ``ctp.nii.gz`` (int16 HU, ``(X, Y, Z, T)``, pixdim[4] = dt in s), ``brain_mask``,
``core_mask``, ``penumbra_mask``, ``vessel_mask``, ``aif_mask`` (one arterial voxel; uint8),
``true_cbf/cbv/mtt/tmax`` (float32) ``.nii.gz``, ``aif_true.txt`` and ``truth.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfdecon.errors import PerfdeconError

MASKS = ("brain_mask", "core_mask", "penumbra_mask", "vessel_mask")
TRUTH_MAPS = ("cbf", "cbv", "mtt", "tmax")
PHANTOM_FILES = (
    "ctp.nii.gz",
    *(f"{m}.nii.gz" for m in MASKS),
    "aif_mask.nii.gz",
    *(f"true_{m}.nii.gz" for m in TRUTH_MAPS),
    "aif_true.txt",
    "truth.json",
)
"""Every file :func:`write_phantom` writes."""


@dataclass(frozen=True)
class PhantomSpec:
    """Geometry and noise of a phantom case.

    Attributes
    ----------
    seed:
        Seed of ``np.random.default_rng``.
    slices, size, frames:
        Slices (Z), in-plane voxels (Y = X) and time frames.
    dt:
        Frame interval (s).
    noise:
        Gaussian noise SD (HU).
    """

    seed: int = 0
    slices: int = 4
    size: int = 256
    frames: int = 50
    dt: float = 1.0
    noise: float = 2.0

    def __post_init__(self) -> None:
        checks = (
            ("seed", self.seed >= 0),
            ("slices", 1 <= self.slices <= 64),
            ("size", 32 <= self.size <= 1024),
            ("frames", 10 <= self.frames <= 1024),
            ("dt", 0.05 <= self.dt <= 60),
            ("noise", 0 <= self.noise <= 1000),
        )
        for name, ok in checks:
            if not ok:
                raise PerfdeconError(f"phantom {name} out of range: {getattr(self, name)}")


@dataclass
class PhantomWritten:
    """Result of :func:`write_phantom`: the folder, core/penumbra volumes (mL)."""

    out: Path
    core_volume_ml: float
    penumbra_volume_ml: float


def write_phantom(out: str | Path, spec: PhantomSpec | None = None) -> PhantomWritten:
    """Generate :func:`perfdecon.phantom.brain_case` and write it to ``out`` as one set.

    Raises
    ------
    PerfdeconError
        An unsafe output folder (checked before the case is generated).
    """
    from medshared.io.outputs import check_output_folder, output_set
    from perfdecon.aif import save_aif_txt
    from perfdecon.io import spacing_affine, write_map
    from perfdecon.jsonout import write_json
    from perfdecon.phantom import brain_case

    sp = spec or PhantomSpec()
    out = Path(out)
    check_output_folder(out, PHANTOM_FILES, what="output folder")
    case = brain_case(
        np.random.default_rng(sp.seed),
        n_slices=sp.slices,
        size=sp.size,
        n_frames=sp.frames,
        dt=sp.dt,
        noise_hu=sp.noise,
    )
    aff = spacing_affine(case.spacing)
    vox_ml = float(np.prod(case.spacing)) / 1000.0
    with output_set(out, PHANTOM_FILES, what="output folder") as tmp:
        # CT numbers are integers on a scanner: int16 HU (smaller, faster to read)
        hu = np.clip(np.rint(case.ctp_hu), -32768, 32767).astype(np.int16)
        write_map(tmp / "ctp.nii.gz", hu, aff, case.spacing, dt=case.dt)
        for name in MASKS:
            write_map(tmp / f"{name}.nii.gz", getattr(case, name).astype(np.uint8), aff,
                      case.spacing)
        aif_mask = np.zeros(case.brain_mask.shape, np.uint8)
        aif_mask[case.aif_location] = 1
        write_map(tmp / "aif_mask.nii.gz", aif_mask, aff, case.spacing)
        for name in TRUTH_MAPS:
            write_map(tmp / f"true_{name}.nii.gz", getattr(case, name), aff, case.spacing)
        save_aif_txt(tmp / "aif_true.txt", case.aif)
        write_json(
            tmp / "truth.json",
            {
                "seed": sp.seed,
                "dt_s": case.dt,
                "spacing_zyx_mm": list(case.spacing),
                "aif_location_zyx": list(case.aif_location),
                "core_volume_ml": float(case.core_mask.sum() * vox_ml),
                "penumbra_volume_ml": float(case.penumbra_mask.sum() * vox_ml),
                "note": "ctp.nii.gz is HU (x, y, z, t); aif_true.txt is the noise-free AIF "
                "enhancement",
            },
        )
    return PhantomWritten(
        out=out,
        core_volume_ml=float(case.core_mask.sum() * vox_ml),
        penumbra_volume_ml=float(case.penumbra_mask.sum() * vox_ml),
    )


__all__ = ["PHANTOM_FILES", "PhantomSpec", "PhantomWritten", "write_phantom"]
