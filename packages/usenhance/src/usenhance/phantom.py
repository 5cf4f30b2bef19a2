"""B-mode ultrasound simulator: organ-like scenes imaged by a high-end and a handheld device.

The imaging chain (all steps vectorised over the whole image, axis order ``(Y, X)`` with ``Y`` the
depth axis pointing away from the probe, pixel spacing in mm):

1. **Scene** (:func:`make_scene`): an echogenicity map ``E`` (mean backscattered intensity, 1 is
   ordinary soft tissue) with organ-like structures (skin/fat/muscle layers, vessels, nodules,
   masses, a kidney's cortex and sinus) and an extra-attenuation map (dB/mm) that casts posterior
   acoustic shadows.
2. **Scatterers**: a circular complex Gaussian field ``z ~ CN(0, E)`` (fully developed speckle:
   many sub-resolution scatterers per resolution cell).
3. **PSF**: a separable Gaussian complex-baseband point-spread function, normalised to unit L2
   energy, with a depth-dependent lateral width (narrowest at the focus). It is applied as one axial
   and ``K`` lateral 1D convolutions, blended linearly along depth.
4. **Attenuation and shadows**: ``10^(-alpha d / 20)`` (round trip) times the accumulated extra
   attenuation of the structures above each pixel.
5. **Device noise**: additive circular complex Gaussian electronic noise (SNR in dB relative to unit
   tissue at the top), near-field reverberation haze and diffuse clutter (handheld only).
6. **Envelope detection** ``|.|`` (Rayleigh statistics in homogeneous tissue: mean/std = 1.91),
   **time-gain compensation** (a fraction of the attenuation is compensated) and **log
   compression** to the device's dynamic range: ``(20 log10 env + DR - headroom) / DR`` clipped to
   [0, 1].

The handheld device differs from the high-end one by a wider PSF, a lower SNR, a smaller dynamic
range, haze and clutter, incomplete TGC and a small rigid misregistration (shift and rotation of
the whole scene), so simulated pairs are *not* pixel-aligned, like the USEnhance 2023 pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from usenhance.errors import UsenhanceError

__all__ = [
    "HANDHELD",
    "HIGH_END",
    "ORGANS",
    "BModeImage",
    "DeviceModel",
    "PairSample",
    "Scene",
    "SimConfig",
    "image_scene",
    "make_scene",
    "simulate_pair",
]

ORGANS = ("thyroid", "carotid", "breast", "liver", "kidney")


@dataclass(frozen=True)
class DeviceModel:
    """Acquisition properties of one ultrasound device.

    Attributes
    ----------
    name : str
        Label used in reports.
    axial_fwhm_mm, lateral_fwhm_mm : float
        PSF full width at half maximum at the focus (mm).
    lateral_growth : float
        Fractional lateral widening per mm away from the focus (1/mm).
    focus_mm : float
        Focal depth (mm).
    snr_db : float
        Ratio of unit-tissue signal at depth 0 to electronic noise (dB).
    dynamic_range_db : float
        Displayed dynamic range of the log compression (dB).
    headroom_db : float
        Level of unit tissue below full white (dB).
    tgc_fraction : float
        Fraction of the depth attenuation compensated by the TGC (1 = all).
    haze : float
        Near-field reverberation haze amplitude relative to unit tissue (0 = none).
    haze_depth_mm : float
        E-folding depth of the haze (mm).
    clutter : float
        Diffuse clutter amplitude relative to unit tissue (0 = none).
    max_shift_px : float
        Largest misregistration shift along each axis (pixels).
    max_rotation_deg : float
        Largest misregistration rotation (degrees).
    """

    name: str
    axial_fwhm_mm: float
    lateral_fwhm_mm: float
    lateral_growth: float
    focus_mm: float
    snr_db: float
    dynamic_range_db: float
    headroom_db: float = 28.0
    tgc_fraction: float = 1.0
    haze: float = 0.0
    haze_depth_mm: float = 6.0
    clutter: float = 0.0
    max_shift_px: float = 0.0
    max_rotation_deg: float = 0.0


HIGH_END = DeviceModel(
    name="high-end", axial_fwhm_mm=0.30, lateral_fwhm_mm=0.45, lateral_growth=0.02,
    focus_mm=18.0, snr_db=45.0, dynamic_range_db=60.0,
)
HANDHELD = DeviceModel(
    name="handheld", axial_fwhm_mm=0.50, lateral_fwhm_mm=0.95, lateral_growth=0.05,
    focus_mm=14.0, snr_db=25.0, dynamic_range_db=42.0, headroom_db=20.0, tgc_fraction=0.8,
    haze=0.35,
    clutter=0.12, max_shift_px=3.0, max_rotation_deg=2.0,
)


@dataclass(frozen=True)
class SimConfig:
    """Simulation settings shared by both devices.

    Attributes
    ----------
    shape : tuple of int
        Image shape ``(Y, X)`` in pixels.
    depth_mm : float
        Imaged depth (extent of ``Y``, mm); the lateral spacing equals the axial one.
    attenuation_db_per_mm : float
        Round-trip tissue attenuation (dB/mm; 0.5 dB/cm/MHz at 5 MHz, both ways = 0.5).
    psf_bands : int
        Number of depth bands whose lateral PSFs are blended (>= 2).
    high, low : DeviceModel
        The high-end and the handheld device.
    """

    shape: tuple[int, int] = (256, 256)
    depth_mm: float = 40.0
    attenuation_db_per_mm: float = 0.5
    psf_bands: int = 4
    high: DeviceModel = field(default=HIGH_END)
    low: DeviceModel = field(default=HANDHELD)

    def __post_init__(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 16:
            raise UsenhanceError(f"simulator: image shape must be 2D and >= 16 px, got {self.shape}")
        if self.depth_mm <= 0 or self.attenuation_db_per_mm < 0 or self.psf_bands < 2:
            raise UsenhanceError("simulator: depth_mm > 0, attenuation >= 0, psf_bands >= 2 required")

    @property
    def spacing_mm(self) -> float:
        """Pixel spacing (mm), the same along both axes."""
        return self.depth_mm / self.shape[0]


class Scene(NamedTuple):
    """An echogenicity scene, axis order ``(Y, X)``.

    Attributes
    ----------
    echo : np.ndarray
        Mean backscattered intensity (1 = ordinary soft tissue), float64.
    attenuation : np.ndarray
        Extra attenuation of each pixel on top of the tissue's (dB/mm), float64.
    organ : str
        The organ the scene imitates.
    """

    echo: np.ndarray
    attenuation: np.ndarray
    organ: str


class BModeImage(NamedTuple):
    """One simulated acquisition, axis order ``(Y, X)``.

    Attributes
    ----------
    envelope : np.ndarray
        Envelope after TGC, before log compression (unit tissue has RMS 1), float64.
    bmode : np.ndarray
        Log-compressed display image in [0, 1], float32.
    """

    envelope: np.ndarray
    bmode: np.ndarray


class PairSample(NamedTuple):
    """A simulated low/high-quality pair of the same scene.

    Attributes
    ----------
    low, high : np.ndarray
        Handheld and high-end B-mode images ``(Y, X)`` in [0, 1], float32.
    scene : Scene
        The (high-end) scene.
    shift_px : tuple of float
        Handheld misregistration ``(dy, dx)`` in pixels.
    rotation_deg : float
        Handheld misregistration rotation (degrees).
    """

    low: np.ndarray
    high: np.ndarray
    scene: Scene
    shift_px: tuple[float, float]
    rotation_deg: float


# --------------------------------------------------------------------------- scenes


def _grid(shape: tuple[int, int], spacing: float) -> tuple[np.ndarray, np.ndarray]:
    y = (np.arange(shape[0]) + 0.5) * spacing
    x = (np.arange(shape[1]) + 0.5 - shape[1] / 2) * spacing
    return np.meshgrid(y, x, indexing="ij")


def _ellipse(yy, xx, cy, cx, ry, rx, angle=0.0, edge=0.15):  # noqa: ANN001, ANN202
    """Soft ellipse mask in [0, 1]: 1 inside, a logistic edge ``edge`` (relative radius) wide."""
    c, s = math.cos(angle), math.sin(angle)
    dy, dx = yy - cy, xx - cx
    u = (c * dy + s * dx) / ry
    v = (-s * dy + c * dx) / rx
    r = np.sqrt(u * u + v * v)
    return 1.0 / (1.0 + np.exp(np.clip((r - 1.0) / edge, -50, 50)))


def _smooth_field(rng: np.random.Generator, shape, sigma_px: float) -> np.ndarray:  # noqa: ANN001
    """Zero-mean, unit-std smooth random field (Gaussian-filtered white noise)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return f / (f.std() + 1e-12)


def _blend(base: np.ndarray, mask: np.ndarray, value) -> np.ndarray:  # noqa: ANN001
    return base * (1.0 - mask) + value * mask


def _layers(yy, xx, rng, echo, att):  # noqa: ANN001, ANN202
    """Skin, subcutaneous fat and a striated muscle layer with wavy boundaries."""
    wave = lambda a, p: a * np.sin(2 * np.pi * xx / p + rng.uniform(0, 2 * np.pi))  # noqa: E731
    skin = yy < 1.2 + wave(0.2, 25)
    d_fat = rng.uniform(3.0, 5.0) + wave(0.6, rng.uniform(15, 30))
    d_mus = d_fat + rng.uniform(3.0, 6.0) + wave(0.8, rng.uniform(20, 40))
    fat = (~skin) & (yy < d_fat)
    muscle = (yy >= d_fat) & (yy < d_mus)
    echo = np.where(skin, 3.0, echo)
    echo = np.where(fat, 0.35, echo)
    striae = 0.7 + 0.5 * (np.sin(2 * np.pi * (yy - 0.15 * xx) / 0.9) > 0.7)
    echo = np.where(muscle, striae, echo)
    fascia = np.abs(yy - d_fat) < 0.25
    echo = np.where(fascia, 2.5, echo)
    return echo, att, d_mus


def _vessel(yy, xx, echo, att, cy, cx, r, wall=0.35):  # noqa: ANN001, ANN202
    outer = _ellipse(yy, xx, cy, cx, r + wall, r + wall, edge=0.05)
    lumen = _ellipse(yy, xx, cy, cx, r, r, edge=0.05)
    echo = _blend(echo, outer, 2.8)
    echo = _blend(echo, lumen, 0.01)
    att = _blend(att, lumen, -0.35)  # blood attenuates less: posterior enhancement
    return echo, att


def make_scene(organ: str, config: SimConfig, rng: np.random.Generator) -> Scene:
    """Build an organ-like echogenicity scene.

    Parameters
    ----------
    organ : str
        One of :data:`ORGANS` (thyroid, carotid, breast, liver, kidney).
    config : SimConfig
        Image shape and spacing.
    rng : np.random.Generator
        Source of the scene's random layout.

    Returns
    -------
    Scene
        ``echo`` and ``attenuation`` maps of shape ``config.shape`` ``(Y, X)``.
    """
    if organ not in ORGANS:
        raise UsenhanceError(f"simulator: unknown organ {organ!r}; choose one of {', '.join(ORGANS)}")
    shape, sp = config.shape, config.spacing_mm
    yy, xx = _grid(shape, sp)
    width = shape[1] * sp
    depth = config.depth_mm
    texture = 1.0 + 0.18 * _smooth_field(rng, shape, 6.0)
    echo = np.ones(shape)
    att = np.zeros(shape)
    echo, att, boundary = _layers(yy, xx, rng, echo, att)
    below = yy >= boundary
    top = float(np.mean(boundary))
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if organ == "thyroid":
        lobe = _ellipse(yy, xx, top + u(7, 10), u(-4, 4), u(6, 9), u(12, 16), edge=0.05)
        echo = np.where(below, _blend(echo * 0.8, lobe, 1.6), echo)
        for _ in range(rng.integers(1, 3)):
            cy, cx = top + u(5, 14), u(-8, 8)
            r = u(1.5, 4.0)
            hyper = rng.random() < 0.4
            halo = _ellipse(yy, xx, cy, cx, r + 0.5, r * 1.2 + 0.5, u(0, 3), edge=0.05)
            nod = _ellipse(yy, xx, cy, cx, r, r * 1.2, u(0, 3), edge=0.1)
            echo = _blend(echo, halo, 0.15)
            echo = _blend(echo, nod, 2.2 if hyper else 0.3)
            if rng.random() < 0.5:  # calcification: bright spot with a shadow
                calc = _ellipse(yy, xx, cy, cx + u(-r / 2, r / 2), 0.4, 0.5, edge=0.1)
                echo = _blend(echo, calc, 8.0)
                att = _blend(att, calc, 6.0)
        side = width / 2 - u(3, 6)
        echo, att = _vessel(yy, xx, echo, att, top + u(8, 12), side * rng.choice([-1, 1]), u(2.5, 3.5))
    elif organ == "carotid":
        cy = top + u(6, 10)
        r = u(2.5, 3.8)
        tilt = u(-0.05, 0.05)
        centre = cy + tilt * xx
        dist = np.abs(yy - centre)
        wall = (dist >= r) & (dist < r + 0.5)
        lumen = dist < r
        echo = np.where(wall, 2.8, echo)
        echo = np.where(lumen, 0.01, echo)
        att = np.where(lumen, -0.35, att)
        for _ in range(rng.integers(0, 3)):
            px = u(-width / 3, width / 3)
            sign = rng.choice([-1.0, 1.0])
            plaque = _ellipse(yy, xx, cy + sign * (r - 0.6) + tilt * px, px, u(0.7, 1.4),
                              u(2, 5), edge=0.1)
            echo = _blend(echo, plaque, u(1.5, 4.0))
            att = _blend(att, plaque, u(0.5, 3.0))
        jug = _ellipse(yy, xx, top + u(1.5, 3.0), u(-6, 6), 1.5, u(4, 7), edge=0.08)
        echo = _blend(echo, jug, 0.03)
    elif organ == "breast":
        glands = 1.0 + 0.6 * (_smooth_field(rng, shape, 4.0) > 0.3)
        echo = np.where(below, glands * (1.0 + 0.25 * np.sin(2 * np.pi * yy / u(3, 6))), echo)
        for _ in range(rng.integers(1, 4)):  # fat lobules
            lob = _ellipse(yy, xx, top + u(2, 20), u(-15, 15), u(1.5, 3), u(3, 6), u(0, 3))
            echo = _blend(echo, lob, 0.4)
        cy, cx, r = top + u(8, 16), u(-8, 8), u(2.5, 5.0)
        spiky = 1.0 + 0.25 * np.sin(7 * np.arctan2(yy - cy, xx - cx))
        mass = _ellipse(yy, xx, cy, cx, r * spiky, r * 1.3 * spiky, u(0, 3), edge=0.08)
        echo = _blend(echo, mass, 0.12)
        att = _blend(att, mass, u(0.3, 1.2))  # posterior shadowing
        if rng.random() < 0.5:
            cyst = _ellipse(yy, xx, top + u(3, 20), u(-15, 15), u(1, 2.5), u(1.5, 3), edge=0.05)
            echo = _blend(echo, cyst, 0.01)
            att = _blend(att, cyst, -0.4)
    elif organ == "liver":
        cap = np.abs(yy - top) < 0.3
        echo = np.where(below, 1.1 * texture, echo)
        echo = np.where(cap, 3.0, echo)
        for _ in range(rng.integers(2, 6)):
            echo, att = _vessel(yy, xx, echo, att, top + u(4, depth - top - 4), u(-15, 15),
                                u(0.8, 2.5), wall=0.25)
        if rng.random() < 0.7:
            les = _ellipse(yy, xx, top + u(8, 20), u(-10, 10), u(2, 5), u(2, 5), edge=0.2)
            echo = _blend(echo, les, u(0.3, 2.5))
    else:  # kidney
        cy, cx = top + u(10, 14), u(-3, 3)
        ry, rx = u(5, 7), u(11, 15)
        ang = u(-0.2, 0.2)
        capsule = _ellipse(yy, xx, cy, cx, ry + 0.4, rx + 0.4, ang, edge=0.03)
        cortex = _ellipse(yy, xx, cy, cx, ry, rx, ang, edge=0.03)
        sinus = _ellipse(yy, xx, cy, cx, ry * 0.45, rx * 0.55, ang, edge=0.15)
        echo = np.where(below, echo * 1.0, echo)
        echo = _blend(echo, capsule, 2.5)
        echo = _blend(echo, cortex, 0.6)
        theta = np.arctan2(yy - cy, xx - cx)
        pyramids = cortex * (1 - sinus) * (np.cos(6 * theta) > 0.4)
        echo = _blend(echo, pyramids, 0.25)
        echo = _blend(echo, sinus, 2.2 * texture)
    echo = np.clip(echo * texture, 0.0, None)
    return Scene(echo=echo, attenuation=att, organ=organ)


# --------------------------------------------------------------------------- imaging


def _complex_noise(rng: np.random.Generator, shape) -> np.ndarray:  # noqa: ANN001
    """Circular complex white Gaussian noise of unit power, stacked as (2, Y, X) real/imag."""
    return rng.standard_normal((2, *shape), dtype=np.float32) * np.float32(math.sqrt(0.5))


def _unit_energy_filter1d(a: np.ndarray, sigma_px: float, axis: int) -> np.ndarray:
    """Gaussian 1D convolution rescaled so that white noise keeps unit power."""
    out = ndimage.gaussian_filter1d(a, sigma_px, axis=axis, mode="wrap", truncate=3.0)
    return out * math.sqrt(2.0 * math.sqrt(math.pi) * sigma_px)


def _fwhm_to_sigma_px(fwhm_mm: float, spacing_mm: float) -> float:
    return max(fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0))) / spacing_mm, 0.3)


def _blob_noise(rng: np.random.Generator, shape, device: DeviceModel, sp: float,  # noqa: ANN001
                widen: float) -> np.ndarray:
    """Unit-power complex noise shaped by the focal PSF widened ``widen`` times laterally."""
    n = _unit_energy_filter1d(_complex_noise(rng, shape), _fwhm_to_sigma_px(device.axial_fwhm_mm, sp),
                              axis=1)
    return _unit_energy_filter1d(n, _fwhm_to_sigma_px(widen * device.lateral_fwhm_mm, sp), axis=2)


def _psf(field_ri: np.ndarray, device: DeviceModel, config: SimConfig) -> np.ndarray:
    """Depth-dependent separable Gaussian PSF applied to a (2, Y, X) complex field."""
    sp = config.spacing_mm
    depth = (np.arange(config.shape[0]) + 0.5) * sp
    out = _unit_energy_filter1d(field_ri, _fwhm_to_sigma_px(device.axial_fwhm_mm, sp), axis=1)
    knots = np.linspace(depth[0], depth[-1], config.psf_bands)
    widths = device.lateral_fwhm_mm * (1.0 + device.lateral_growth * np.abs(knots - device.focus_mm))
    bands = [_unit_energy_filter1d(out, _fwhm_to_sigma_px(w, sp), axis=2) for w in widths]
    pos = np.interp(depth, knots, np.arange(config.psf_bands))
    lo = np.minimum(np.floor(pos).astype(int), config.psf_bands - 2)
    frac = (pos - lo)[None, :, None]
    stack = np.stack(bands)  # (K, 2, Y, X)
    rows = np.arange(config.shape[0])
    a = stack[lo, :, rows, :].transpose(1, 0, 2)  # (2, Y, X)
    b = stack[lo + 1, :, rows, :].transpose(1, 0, 2)
    # linear blending of two independent-ish filtered fields keeps power only approximately;
    # renormalise so that unit echogenicity keeps unit RMS at every depth
    w0, w1 = 1.0 - frac, frac
    corr = np.sqrt(w0 * w0 + w1 * w1 + 2 * w0 * w1 * _band_correlation(widths, lo, sp)[None, :, None])
    return ((w0 * a + w1 * b) / corr).astype(np.float32)


def _band_correlation(widths: np.ndarray, lo: np.ndarray, sp: float) -> np.ndarray:
    """Correlation of white noise filtered by two unit-energy Gaussians (per depth row)."""
    s1 = np.array([_fwhm_to_sigma_px(w, sp) for w in widths])
    a, b = s1[lo], s1[lo + 1]
    return np.sqrt(2.0 * a * b / (a * a + b * b))


def _misregister(scene: Scene, scatter: np.ndarray, rng: np.random.Generator,
                 device: DeviceModel) -> tuple[Scene, np.ndarray, tuple[float, float], float]:
    """Rigidly move the scene (and its scatterers) by a random small shift and rotation."""
    if device.max_shift_px <= 0 and device.max_rotation_deg <= 0:
        return scene, scatter, (0.0, 0.0), 0.0
    dy, dx = rng.uniform(-device.max_shift_px, device.max_shift_px, size=2)
    rot = float(rng.uniform(-device.max_rotation_deg, device.max_rotation_deg))
    th = math.radians(rot)
    ny, nx = scene.echo.shape
    yy, xx = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    cy, cx = 0.0, nx / 2.0  # rotate about the probe centre
    sy = cy + math.cos(th) * (yy - cy) - math.sin(th) * (xx - cx) + dy
    sx = cx + math.sin(th) * (yy - cy) + math.cos(th) * (xx - cx) + dx
    coords = np.stack([sy, sx])
    warp = lambda a, o: ndimage.map_coordinates(a, coords, order=o, mode="reflect")  # noqa: E731
    moved = Scene(warp(scene.echo, 1), warp(scene.attenuation, 1), scene.organ)
    sc = np.stack([warp(scatter[0], 0), warp(scatter[1], 0)])
    return moved, sc, (float(dy), float(dx)), rot


def image_scene(scene: Scene, device: DeviceModel, config: SimConfig, rng: np.random.Generator,
                scatterers: np.ndarray | None = None) -> BModeImage:
    """Image a scene with one device (no misregistration; see :func:`simulate_pair`).

    Parameters
    ----------
    scene : Scene
        Echogenicity and extra attenuation, shape ``config.shape`` ``(Y, X)``.
    device : DeviceModel
        The device.
    config : SimConfig
        Geometry and tissue attenuation.
    rng : np.random.Generator
        Source of the scatterers (when not given) and of the device noise.
    scatterers : np.ndarray, optional
        Unit-power complex white field stacked as ``(2, Y, X)`` (real, imag); drawn when absent.

    Returns
    -------
    BModeImage
        Envelope after TGC (RMS 1 in unit tissue at full TGC) and the log-compressed image.
    """
    shape = config.shape
    if scene.echo.shape != tuple(shape):
        raise UsenhanceError(f"simulator: scene shape {scene.echo.shape} != config shape {shape}")
    sp = config.spacing_mm
    if scatterers is None:
        scatterers = _complex_noise(rng, shape)
    z = scatterers * np.sqrt(scene.echo).astype(np.float32)[None]
    sig = _psf(z, device, config)
    depth = ((np.arange(shape[0]) + 0.5) * sp)[:, None]
    alpha = config.attenuation_db_per_mm
    shadow_db = np.cumsum(np.maximum(scene.attenuation, -alpha), axis=0) * sp
    loss_db = alpha * depth + shadow_db
    sig = sig * (10.0 ** (-loss_db / 20.0)).astype(np.float32)[None]
    noise = _complex_noise(rng, shape) * 10.0 ** (-device.snr_db / 20.0)
    noise = _unit_energy_filter1d(noise, _fwhm_to_sigma_px(device.axial_fwhm_mm, sp), axis=1)
    total = sig + noise
    if device.haze > 0:
        total = total + device.haze * _blob_noise(rng, shape, device, sp, 4.0) * np.exp(
            -depth / device.haze_depth_mm
        )[None]
    if device.clutter > 0:
        total = total + device.clutter * _blob_noise(rng, shape, device, sp, 1.5)
    gain_db = device.tgc_fraction * alpha * depth
    env = np.hypot(total[0], total[1]).astype(np.float64) * 10.0 ** (gain_db / 20.0)
    db = 20.0 * np.log10(np.maximum(env, 1e-12))
    dr = device.dynamic_range_db
    bmode = np.clip((db + dr - device.headroom_db) / dr, 0.0, 1.0).astype(np.float32)
    return BModeImage(envelope=env, bmode=bmode)


def simulate_pair(organ: str, config: SimConfig | None = None,
                  rng: np.random.Generator | None = None) -> PairSample:
    """Simulate one handheld (low) / high-end (high) pair of the same organ-like scene.

    Both devices image the same scatterers; the handheld one sees the scene moved by a small
    random rigid transform, so the pair is not pixel-aligned.

    Parameters
    ----------
    organ : str
        One of :data:`ORGANS`.
    config : SimConfig, optional
        Geometry and the two devices (default :class:`SimConfig`).
    rng : np.random.Generator, optional
        Source of all randomness; the same seed gives the same pair.

    Returns
    -------
    PairSample
        ``low``/``high`` images ``(Y, X)`` float32 in [0, 1] and the misregistration.

    Example
    -------
    >>> import numpy as np
    >>> p = simulate_pair("thyroid", SimConfig(shape=(64, 64)), np.random.default_rng(0))
    >>> p.low.shape, p.high.dtype.name
    ((64, 64), 'float32')
    """
    config = config or SimConfig()
    rng = rng if rng is not None else np.random.default_rng()
    scene = make_scene(organ, config, rng)
    scatter = _complex_noise(rng, config.shape)
    high = image_scene(scene, config.high, config, rng, scatter)
    moved, moved_scatter, shift, rot = _misregister(scene, scatter, rng, config.low)
    low = image_scene(moved, config.low, config, rng, moved_scatter)
    return PairSample(low=low.bmode, high=high.bmode, scene=scene, shift_px=shift,
                      rotation_deg=rot)
