"""Flow quantities from a velocity field: flow rate through a plane and peak velocity.

Coordinates: voxel ``i`` along an axis of spacing ``dx`` (mm) is centred at ``(i + 0.5) * dx``
mm (the convention of :mod:`flowsr.phantom` and of the HDF5/NIfTI grids written by flowsr).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import map_coordinates

from flowsr.errors import FlowsrError


def flow_rate(
    velocity: np.ndarray,
    dx_mm: Sequence[float],
    point_mm: Sequence[float],
    normal: Sequence[float],
    radius_mm: float,
    mask: np.ndarray | None = None,
    samples_per_voxel: int = 3,
) -> np.ndarray:
    """Volumetric flow rate through a disk perpendicular to ``normal`` centred on ``point_mm``.

    ``Q = sum_k (v(p_k) . n) dA_k`` over a polar grid of points ``p_k`` on the disk (velocity
    trilinearly interpolated, ``samples_per_voxel`` points per voxel spacing radially and
    tangentially). With ``mask``, samples outside the (nearest-neighbour) mask are dropped.

    Parameters
    ----------
    velocity : np.ndarray
        ``(3, X, Y, Z)`` or ``(3, T, X, Y, Z)`` velocity in m/s (components along X, Y, Z).
    dx_mm : sequence of 3 float
        Voxel spacing (mm).
    point_mm, normal : sequence of 3 float
        Disk centre (mm) and plane normal (any length; the sign sets the flow direction).
    radius_mm : float
        Disk radius (mm): a little larger than the lumen, smaller than the distance to any other
        vessel crossing the plane.
    mask : np.ndarray, optional
        ``(X, Y, Z)`` fluid mask.

    Returns
    -------
    np.ndarray
        ``(T,)`` flow rate in mL/s (``(1,)`` for a single frame): 1 m/s through 1 mm^2 is 1 mL/s.
    """
    vel = np.asarray(velocity, dtype=np.float64)
    if vel.ndim == 4:
        vel = vel[:, None]
    if vel.ndim != 5 or vel.shape[0] != 3:
        raise FlowsrError(f"flow_rate: velocity must be (3, [T,] X, Y, Z), got {vel.shape}")
    n = np.asarray(normal, dtype=np.float64)
    if not np.all(np.isfinite(n)) or np.linalg.norm(n) == 0:
        raise FlowsrError(f"flow_rate: the plane normal {list(normal)} must be a non-zero vector")
    if not radius_mm > 0:
        raise FlowsrError(f"flow_rate: disk radius must be > 0 mm, got {radius_mm}")
    n = n / np.linalg.norm(n)
    h = np.asarray(dx_mm, dtype=np.float64)
    step = float(h.min()) / samples_per_voxel
    a = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(n, a)
    nr = max(1, int(np.ceil(radius_mm / step)))
    r = (np.arange(nr) + 0.5) * (radius_mm / nr)
    nth = np.maximum(6, np.ceil(2 * np.pi * r / step).astype(int))
    rr = np.repeat(r, nth)
    th = np.concatenate([(np.arange(k) + 0.5) * 2 * np.pi / k for k in nth])
    area = np.repeat((2 * np.pi * r * (radius_mm / nr)) / nth, nth)
    pts = np.asarray(point_mm, dtype=np.float64) + rr[:, None] * (
        np.cos(th)[:, None] * a + np.sin(th)[:, None] * b
    )
    coords = (pts / h - 0.5).T  # (3, K) voxel-index coordinates
    if mask is not None:
        m = np.asarray(mask).astype(np.float64)
        keep = map_coordinates(m, coords, order=0, mode="constant", cval=0.0) > 0.5
        coords, area = coords[:, keep], area[keep]
    q = np.empty(vel.shape[1])
    for t in range(vel.shape[1]):  # per frame; each is one vectorised interpolation
        vn = sum(
            n[c] * map_coordinates(vel[c, t], coords, order=1, mode="constant", cval=0.0)
            for c in range(3)
        )
        q[t] = float(np.sum(vn * area))
    return q


def peak_velocity(velocity: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Peak speed ``max |v|`` per frame (m/s), within ``mask`` when given.

    Parameters
    ----------
    velocity : np.ndarray
        ``(3, T, X, Y, Z)`` m/s.
    mask : np.ndarray, optional
        ``(X, Y, Z)`` or ``(T, X, Y, Z)`` fluid mask.

    Returns
    -------
    np.ndarray
        ``(T,)`` peak speed (m/s).
    """
    speed = np.sqrt(np.sum(np.asarray(velocity, dtype=np.float64) ** 2, axis=0))
    if mask is not None:
        speed = np.where(np.broadcast_to(mask, speed.shape), speed, 0.0)
    return speed.reshape(speed.shape[0], -1).max(axis=1)


def divergence(velocity: np.ndarray, dx_mm: Sequence[float]) -> np.ndarray:
    """Central-difference divergence ``du/dx + dv/dy + dw/dz`` (1/s) of ``(3, X, Y, Z)`` m/s."""
    h = np.asarray(dx_mm, dtype=np.float64) * 1e-3
    v = np.asarray(velocity, dtype=np.float64)
    return sum(np.gradient(v[i], h[i], axis=i) for i in range(3))


def gradient_norm(velocity: np.ndarray, dx_mm: Sequence[float]) -> np.ndarray:
    """Frobenius norm of the velocity gradient tensor (1/s) of ``(3, X, Y, Z)`` m/s."""
    h = np.asarray(dx_mm, dtype=np.float64) * 1e-3
    v = np.asarray(velocity, dtype=np.float64)
    return np.sqrt(sum(np.gradient(v[i], h[j], axis=j) ** 2 for i in range(3) for j in range(3)))
