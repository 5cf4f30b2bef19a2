"""CFD-like aortic-arch phantom: pulsatile Womersley flow swept along an arch centreline.

Geometry (local frame, mm, before a tilt about the vertical Y axis): an ascending straight
segment ``x = x_a`` going up (+Y) to ``y = y_a``, a half-circle arch of radius ``Rc`` over the
top, and a descending straight segment ``x = x_a + 2 Rc`` going down (-Y). The centreline is C1
and both straight ends leave the box, so flow enters and leaves through the grid boundary.

Flow field at a voxel with nearest centreline point ``c(s)``, tangent ``t``, radial unit ``e_r``
and normalised radius ``eta = |p - c| / R(s)``:

- axial ``u_z = Re sum_n Q_n e^{i w_n t} g_n(eta) / (pi R(s)^2)`` (unit-mean Womersley profiles,
  Womersley numbers from the nominal radius, so the profile is self-similar along the vessel);
- radial ``u_r = eta R'(s) u_z``: the exact continuity solution of a self-similar profile in a
  slowly varying straight pipe (non-zero only across the coarctation);
- swirl ``u_theta = S * P * q(t) * zeta(eta)``, ``zeta = 3 sqrt(3)/2 eta (1 - eta^2)`` (peak 1).

On the straight segments the field is exactly divergence-free; on the arch the axial part is a
toroidal flow (also exactly divergence-free) and the swirl is approximately so. The flux through
any cross-section equals ``Q(t)`` everywhere (coarctation included). Velocity is zero outside
the lumen. All arrays ``(T, X, Y, Z)`` float32 in m/s; ``u, v, w`` are the X, Y, Z components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowsr.config import PhantomConfig
from flowsr.errors import FlowsrError
from flowsr.womersley import aortic_waveform, womersley_profiles

_ZETA_NORM = 1.5 * np.sqrt(3.0)


@dataclass(frozen=True)
class ArchGeometry:
    """Centreline parameters (mm, radians) of one phantom geometry."""

    x_a: float
    y_a: float
    z0: float
    arch_radius: float
    tilt: float
    radius: float
    coarct_s: float
    coarct_width: float
    coarct_depth: float

    @property
    def centre(self) -> np.ndarray:
        """Arch centre (mm), also the tilt pivot."""
        return np.array([self.x_a + self.arch_radius, self.y_a, self.z0])

    def rotation(self) -> np.ndarray:
        """``(3, 3)`` local -> world rotation (tilt about the Y axis)."""
        c, s = np.cos(self.tilt), np.sin(self.tilt)
        return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])

    def radius_at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lumen radius ``R(s)`` (mm) and ``dR/ds`` at arc length ``s`` (mm)."""
        x = (np.asarray(s, dtype=np.float64) - self.coarct_s) / self.coarct_width
        inside = np.abs(x) < 1.0
        bump = np.where(inside, np.cos(0.5 * np.pi * x) ** 2, 0.0)
        dbump = np.where(inside, -0.5 * np.pi * np.sin(np.pi * x) / self.coarct_width, 0.0)
        return self.radius * (1.0 - self.coarct_depth * bump), -self.radius * self.coarct_depth * dbump

    def centreline(self, step_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled centreline inside ``y >= 0``: arc length ``(N,)``, points ``(N, 3)`` and unit
        tangents ``(N, 3)`` in world mm (flow direction)."""
        rc = self.arch_radius
        s = np.arange(-self.y_a, np.pi * rc + self.y_a + 1e-9, step_mm)
        pts, tan = _centreline_local(s, self.x_a, self.y_a, self.z0, rc)
        rot = self.rotation()
        c = self.centre
        return s, (pts - c) @ rot.T + c, tan @ rot.T


def _centreline_local(s: np.ndarray, x_a: float, y_a: float, z0: float, rc: float):
    """Centreline points and tangents at arc length ``s`` (local frame, mm)."""
    pts = np.empty((s.size, 3))
    tan = np.zeros((s.size, 3))
    asc, desc = s < 0.0, s > np.pi * rc
    arc = ~(asc | desc)
    phi = s[arc] / rc
    pts[:, 2] = z0
    pts[asc, 0], pts[asc, 1] = x_a, y_a + s[asc]
    tan[asc, 1] = 1.0
    pts[arc, 0] = x_a + rc - rc * np.cos(phi)
    pts[arc, 1] = y_a + rc * np.sin(phi)
    tan[arc, 0], tan[arc, 1] = np.sin(phi), np.cos(phi)
    pts[desc, 0], pts[desc, 1] = x_a + 2 * rc, y_a - (s[desc] - np.pi * rc)
    tan[desc, 1] = -1.0
    return pts, tan


@dataclass(frozen=True, eq=False)
class FlowPhantom:
    """One phantom series.

    Attributes
    ----------
    velocity : np.ndarray
        ``(3, T, X, Y, Z)`` float32, m/s (components u, v, w along X, Y, Z).
    mask : np.ndarray
        ``(X, Y, Z)`` bool, True in the lumen.
    dx_mm : float
        Isotropic voxel size (mm); voxel ``i`` is centred at ``(i + 0.5) * dx_mm``.
    dt_s : float
        Frame interval (s).
    flow_ml_s : np.ndarray
        ``(T,)`` prescribed flow rate through every cross-section (mL/s).
    geometry : ArchGeometry
        Centreline parameters.
    heart_rate_bpm, peak_velocity : float
        Heart rate (beats/min) and the peak speed over the series (m/s).
    """

    velocity: np.ndarray
    mask: np.ndarray
    dx_mm: float
    dt_s: float
    flow_ml_s: np.ndarray
    geometry: ArchGeometry
    heart_rate_bpm: float
    peak_velocity: float

    @property
    def peak_systole_frame(self) -> int:
        """Frame with the highest flow rate."""
        return int(np.argmax(self.flow_ml_s))

    @property
    def diastolic_frame(self) -> int:
        """A late-diastolic frame (80% of the cycle), as the paper's 'low diastolic frame'."""
        return int(round(0.8 * self.flow_ml_s.size)) % self.flow_ml_s.size


def sample_geometry(config: PhantomConfig, rng: np.random.Generator) -> ArchGeometry:
    """Draw one arch geometry that fits the grid of ``config`` (all lengths mm)."""
    lx, ly, lz = (n * config.voxel_mm for n in (config.shape_x, config.shape_y, config.shape_z))
    r0 = config.radius_mm if config.radius_mm > 0 else float(rng.uniform(12.0, 15.0))
    rc_hi = 0.5 * (lx - 2 * r0 - 12.0)
    rc_lo = 1.4 * r0
    if rc_hi < rc_lo or lz < 2 * r0 + 4 or ly < 3 * r0 + rc_lo + 8:
        raise FlowsrError(
            f"phantom grid {config.shape_x}x{config.shape_y}x{config.shape_z} voxels of "
            f"{config.voxel_mm} mm ({lx:.0f}x{ly:.0f}x{lz:.0f} mm) is too small for a lumen radius "
            f"of {r0:.1f} mm; enlarge the grid or the voxel size"
        )
    rc = float(rng.uniform(rc_lo, rc_hi))
    x_a = float(rng.uniform(r0 + 6.0, lx - r0 - 6.0 - 2 * rc))
    y_hi = ly - 4.0 - rc - r0
    y_a = float(rng.uniform(min(0.35 * ly, y_hi), y_hi))
    slack = max(0.0, lz / 2 - r0 - 2.0)
    tilt_max = min(np.deg2rad(20.0), float(np.arcsin(min(1.0, slack / rc))))
    tilt = float(rng.uniform(-tilt_max, tilt_max))
    z0 = lz / 2 + float(rng.uniform(-1.0, 1.0)) * max(0.0, slack - rc * abs(np.sin(tilt)))
    if config.coarctation >= 0:
        depth = config.coarctation
    else:
        depth = float(rng.uniform(0.2, 0.5)) if rng.random() < 0.5 else 0.0
    width = 1.5 * r0
    coarct_s = np.pi * rc + float(rng.uniform(0.15, 0.45)) * y_a + width
    return ArchGeometry(x_a, y_a, z0, rc, tilt, r0, coarct_s, width, depth)


def _nearest_on_centreline(p: np.ndarray, g: ArchGeometry):
    """Arc length, nearest point and tangent (local frame) for local points ``p`` ``(N, 3)``."""
    rc = g.arch_radius
    cand_s = np.empty((3, p.shape[0]))
    cand_s[0] = np.minimum(p[:, 1] - g.y_a, 0.0)
    dx, dy = p[:, 0] - (g.x_a + rc), p[:, 1] - g.y_a
    cand_s[1] = rc * np.clip(np.arctan2(dy, -dx), 0.0, np.pi)
    cand_s[2] = np.pi * rc + np.maximum(g.y_a - p[:, 1], 0.0)
    dist = np.empty_like(cand_s)
    for k in range(3):  # three centreline pieces, vectorised over points
        pts, _ = _centreline_local(cand_s[k], g.x_a, g.y_a, g.z0, rc)
        dist[k] = np.linalg.norm(p - pts, axis=1)
    best = np.argmin(dist, axis=0)
    s = cand_s[best, np.arange(p.shape[0])]
    pts, tan = _centreline_local(s, g.x_a, g.y_a, g.z0, rc)
    return s, pts, tan


def make_phantom(config: PhantomConfig | None = None, seed: int = 0) -> FlowPhantom:
    """Generate one phantom series; ``seed`` picks the geometry and physiology.

    Parameters
    ----------
    config : PhantomConfig, optional
        Grid, timing and flow options (defaults: :class:`PhantomConfig`).
    seed : int
        Seed of ``numpy.random.default_rng``; distinct seeds give distinct geometries.

    Returns
    -------
    FlowPhantom
        Velocity ``(3, T, X, Y, Z)`` m/s, lumen mask ``(X, Y, Z)``, spacing, timing and flow.
    """
    cfg = config or PhantomConfig()
    rng = np.random.default_rng(seed)
    g = sample_geometry(cfg, rng)
    hr = cfg.heart_rate_bpm if cfg.heart_rate_bpm > 0 else float(rng.uniform(60.0, 75.0))
    peak = cfg.peak_velocity if cfg.peak_velocity > 0 else float(rng.uniform(1.0, 1.5))
    swirl = cfg.swirl if cfg.swirl >= 0 else float(rng.uniform(0.0, 0.15))
    period = 60.0 / hr
    dt = period / cfg.frames
    shape = (cfg.shape_x, cfg.shape_y, cfg.shape_z)
    h = cfg.voxel_mm
    grid = np.stack(
        np.meshgrid(*[(np.arange(n) + 0.5) * h for n in shape], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    rot, c = g.rotation(), g.centre
    local = (grid - c) @ rot + c  # world -> local is rot^T applied to row vectors
    s, near, tan = _nearest_on_centreline(local, g)
    radius, dradius = g.radius_at(s)
    rvec = local - near
    rho = np.linalg.norm(rvec, axis=1)
    inside = rho < radius
    idx = np.flatnonzero(inside)
    eta = rho[idx] / radius[idx]
    e_r = rvec[idx] / np.maximum(rho[idx], 1e-12)[:, None]
    t_ = tan[idx]
    e_t = np.cross(t_, e_r)

    wave = aortic_waveform(cfg.harmonics)
    n = np.arange(cfg.harmonics + 1)
    omega = 2 * np.pi * n / period
    alphas = g.radius * 1e-3 * np.sqrt(omega / cfg.viscosity)
    profiles = womersley_profiles(eta, alphas)  # (N, H+1), unit mean
    phase = np.arange(cfg.frames) / cfg.frames
    cycle = np.exp(2j * np.pi * n[:, None] * phase[None, :]) * wave.coefficients[:, None]
    area = np.pi * radius[idx] ** 2  # mm^2, Q in units of mm^2 * (m/s) until scaled
    u_ax = np.real(profiles @ cycle) / area[:, None]  # (N, T)
    u_r = eta[:, None] * dradius[idx, None] * u_ax
    q_t = wave(phase)
    zeta = _ZETA_NORM * eta * (1.0 - eta**2)
    axial_peak = float(np.max(np.abs(u_ax))) if u_ax.size else 1.0
    u_th = swirl * axial_peak * zeta[:, None] * (q_t / np.max(np.abs(q_t)))[None, :]
    vel_local = (
        u_ax[:, :, None] * t_[:, None, :]
        + u_r[:, :, None] * e_r[:, None, :]
        + u_th[:, :, None] * e_t[:, None, :]
    )  # (N, T, 3)
    vel_world = vel_local @ rot.T
    speed_max = float(np.max(np.linalg.norm(vel_world, axis=2))) if idx.size else 0.0
    if speed_max <= 0:
        raise FlowsrError("phantom: the vessel does not cross the grid; change the seed or grid")
    scale = peak / speed_max
    velocity = np.zeros((3, cfg.frames, grid.shape[0]), dtype=np.float32)
    velocity[:, :, idx] = np.transpose(vel_world * scale, (2, 1, 0))
    velocity = velocity.reshape(3, cfg.frames, *shape)
    # flow: Q = sum over harmonics of the unit-mean profile times area -> q(t) * scale in
    # mm^2 m/s = 1e-6 m^3/s * 1e6 mL/m^3 ... 1 mm^2 * 1 m/s = 1 mL/s
    flow = q_t * scale
    return FlowPhantom(
        velocity=velocity,
        mask=inside.reshape(shape),
        dx_mm=float(h),
        dt_s=float(dt),
        flow_ml_s=flow.astype(np.float64),
        geometry=g,
        heart_rate_bpm=float(hr),
        peak_velocity=float(peak),
    )
