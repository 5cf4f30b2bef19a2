"""Synthetic tract-like bundles in MNI152 1 mm space (for tests, the demo and training at scale).

Twelve named tracts, each a cubic Bezier centreline in RAS+ mm with a circular cross-section whose
radius grows along the tract (fanning) and whose offsets rotate about the centreline (twisting).
Several tracts cross or touch (CST/MCP in the brainstem, IFOF/ILF/UF in the temporal lobe, the
arcuate over the CST). Each subject gets its own smooth deformation (scale, rotation, shift and
control-point jitter); each streamline gets its own point count (20-100), uneven point spacing,
trimmed ends and a random direction, so the preprocessing has real work to do. All vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamvq.space import ReferenceSpace

#: MNI152 1 mm template grid (FSL convention): 182 x 218 x 182 voxels, RAS+ mm.
MNI_1MM = ReferenceSpace(
    affine=np.array(
        [[-1.0, 0, 0, 90.0], [0, 1.0, 0, -126.0], [0, 0, 1.0, -72.0], [0, 0, 0, 1.0]]
    ),
    dimensions=(182, 218, 182),
    voxel_sizes=(1.0, 1.0, 1.0),
)

# name: (4 control points RAS mm, radius mm, fan (relative growth), twist (turns))
_TRACTS: dict[str, tuple[list[list[float]], float, float, float]] = {
    "CST_L": ([[-8, -24, -42], [-18, -20, -5], [-24, -20, 35], [-30, -22, 62]], 3.0, 1.5, 0.1),
    "CST_R": ([[8, -24, -42], [18, -20, -5], [24, -20, 35], [30, -22, 62]], 3.0, 1.5, 0.1),
    "AF_L": ([[-48, -48, -2], [-40, -52, 32], [-40, -8, 34], [-48, 12, 16]], 3.5, 0.5, 0.0),
    "AF_R": ([[48, -48, -2], [40, -52, 32], [40, -8, 34], [48, 12, 16]], 3.5, 0.5, 0.0),
    "ILF_L": ([[-38, -88, 2], [-42, -62, -6], [-42, -30, -18], [-38, 0, -30]], 4.0, 0.3, 0.25),
    "ILF_R": ([[38, -88, 2], [42, -62, -6], [42, -30, -18], [38, 0, -30]], 4.0, 0.3, 0.25),
    "IFOF_L": ([[-28, -90, 6], [-34, -40, -4], [-32, 10, -8], [-24, 44, 6]], 3.0, 0.8, 0.4),
    "IFOF_R": ([[28, -90, 6], [34, -40, -4], [32, 10, -8], [24, 44, 6]], 3.0, 0.8, 0.4),
    "UF_L": ([[-40, 4, -28], [-30, -6, -10], [-26, 22, -12], [-20, 38, -4]], 2.5, 0.6, 0.0),
    "CC_ForcepsMajor": ([[-30, -92, 10], [-10, -40, 16], [10, -40, 16], [30, -92, 10]],
                        4.0, 1.0, 0.0),
    "CC_ForcepsMinor": ([[-26, 48, 8], [-8, 18, 12], [8, 18, 12], [26, 48, 8]], 3.5, 1.0, 0.0),
    "MCP": ([[-32, -62, -40], [-16, -28, -30], [16, -28, -30], [32, -62, -40]], 4.0, 0.4, 0.15),
}

TRACT_NAMES: tuple[str, ...] = tuple(_TRACTS)


@dataclass(frozen=True)
class SyntheticBundle:
    """One synthetic bundle of one subject."""

    subject: str
    tract: str
    streamlines: list[np.ndarray]
    """(N_i, 3) float32 arrays, RAS+ mm."""
    space: ReferenceSpace


def _bezier(ctrl: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cubic Bezier position and derivative at parameters ``u`` (any shape) -> (..., 3)."""
    u = u[..., None]
    v = 1.0 - u
    p0, p1, p2, p3 = ctrl
    pos = v**3 * p0 + 3 * v**2 * u * p1 + 3 * v * u**2 * p2 + u**3 * p3
    der = 3 * v**2 * (p1 - p0) + 6 * v * u * (p2 - p1) + 3 * u**2 * (p3 - p2)
    return pos, der


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix from three small angles (radians) about x, y, z."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def synthetic_bundle(
    tract: str,
    n_streamlines: int,
    rng: np.random.Generator,
    *,
    subject_transform: tuple[np.ndarray, np.ndarray] | None = None,
    jitter_mm: float = 2.0,
) -> list[np.ndarray]:
    """Streamlines of one synthetic tract.

    Parameters
    ----------
    tract : str
        One of :data:`TRACT_NAMES`.
    n_streamlines : int
        Number of streamlines.
    rng : np.random.Generator
    subject_transform : (A (3, 3), t (3,)), optional
        The subject's deformation ``x -> A x + t`` (mm).
    jitter_mm : float
        Standard deviation of the per-subject control-point jitter (mm).

    Returns
    -------
    list of (N_i, 3) float32 arrays, RAS+ mm, 20 <= N_i <= 100.
    """
    ctrl0, radius, fan, twist = _TRACTS[tract]
    ctrl = np.asarray(ctrl0, dtype=np.float64) + rng.normal(0.0, jitter_mm, (4, 3))
    if subject_transform is not None:
        a, t = subject_transform
        ctrl = ctrl @ a.T + t
    m = int(n_streamlines)
    n_pts = rng.integers(20, 101, m)
    n_max = int(n_pts.max())
    # per-streamline parameter range (trimmed ends) and uneven spacing
    u0 = rng.uniform(0.0, 0.08, m)
    u1 = rng.uniform(0.92, 1.0, m)
    steps = rng.uniform(0.5, 1.5, (m, n_max))
    col = np.arange(n_max)[None, :]
    valid = col < n_pts[:, None]
    steps[:, 0] = 0.0
    steps = np.where(valid, steps, 0.0)
    cum = np.cumsum(steps, axis=1)
    cum = cum / np.take_along_axis(cum, (n_pts - 1)[:, None], axis=1)
    u = u0[:, None] + (u1 - u0)[:, None] * np.minimum(cum, 1.0)
    pos, der = _bezier(ctrl, u)
    tangent = der / np.linalg.norm(der, axis=-1, keepdims=True)
    chord = ctrl[3] - ctrl[0]
    helper = np.eye(3)[np.argmin(np.abs(chord))]
    normal = np.cross(tangent, helper)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    binormal = np.cross(tangent, normal)
    # cross-section offset: uniform in a disc, radius grows (fan), angle turns (twist)
    r = radius * np.sqrt(rng.uniform(0.0, 1.0, m))
    phi = rng.uniform(0.0, 2 * np.pi, m)
    grow = 1.0 + fan * u
    ang = phi[:, None] + 2 * np.pi * twist * u
    off = (r[:, None] * grow)[..., None] * (
        np.cos(ang)[..., None] * normal + np.sin(ang)[..., None] * binormal
    )
    wiggle = rng.normal(0.0, 0.15, (m, n_max, 3))
    pts = pos + off + wiggle
    flip = rng.uniform(size=m) < 0.5
    out = []
    for i in range(m):  # one split per streamline (not per point): ragged output
        s = pts[i, : n_pts[i]]
        out.append((s[::-1] if flip[i] else s).astype(np.float32))
    return out


def synthetic_dataset(
    n_subjects: int,
    streamlines_per_bundle: int | tuple[int, int] = 100,
    *,
    tracts: tuple[str, ...] = TRACT_NAMES,
    seed: int = 0,
) -> list[SyntheticBundle]:
    """Bundles of ``n_subjects`` synthetic subjects x ``tracts``, in MNI152 1 mm space.

    Parameters
    ----------
    n_subjects : int
    streamlines_per_bundle : int or (low, high)
        Streamlines per bundle (a range draws a count per bundle, inclusive).
    tracts : tuple of str
        Tract names (default: all twelve).
    seed : int
        Everything is reproducible from this seed.
    """
    unknown = [t for t in tracts if t not in _TRACTS]
    if unknown:
        from streamvq.errors import StreamvqError

        raise StreamvqError(f"unknown synthetic tract(s) {unknown}; known: {list(_TRACTS)}")
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_subjects):
        scale = np.diag(rng.uniform(0.93, 1.07, 3))
        a = _rotation(rng.normal(0.0, 0.04, 3)) @ scale
        t = rng.normal(0.0, 2.0, 3)
        for name in tracts:
            if isinstance(streamlines_per_bundle, tuple):
                n = int(rng.integers(streamlines_per_bundle[0], streamlines_per_bundle[1] + 1))
            else:
                n = int(streamlines_per_bundle)
            sl = synthetic_bundle(name, n, rng, subject_transform=(a, t))
            out.append(SyntheticBundle(f"synth-{k:03d}", name, sl, MNI_1MM))
    return out
