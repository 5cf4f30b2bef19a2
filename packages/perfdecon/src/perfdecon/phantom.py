"""Digital CT perfusion phantoms with ground truth (numpy).

* :func:`grid_phantom`: a Kudo-style grid (Kudo et al. 2010): blocks of voxels with every
  combination of CBF x MTT x delay, one residue shape (exponential, box or gamma), a
  gamma-variate AIF and Gaussian noise in HU.
* :func:`brain_case`: a brain-like 4D CTP case (grey/white matter, ventricles, arteries carrying the
  AIF, a venous sinus, an ischaemic core and a penumbra with known masks) for training and
  evaluating AIF selection.

Tissue curves are ``c(t) = F (c_a * R(. - delay))(t)`` with ``F = CBF rho / (6000 kH)`` (1/s), so
that :func:`perfdecon.maps.compute_maps` with the same ``rho``/``kH`` recovers CBF in
mL/100 g/min.  The convolution is evaluated by the midpoint rule on a 10x finer time grid
(within 1e-4 of the peak of adaptive quadrature), not with the Volterra or circulant matrices
the deconvolution uses, so no "inverse crime".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfdecon.config import CORE_THRESHOLD, PENUMBRA_TMAX, RHO
from perfdecon.config import HEMATOCRIT_FACTOR as KH

RESIDUES = ("exponential", "box", "gamma")
_FINE = 10


def gamma_variate(t, t0, a, b, c):
    """Gamma-variate bolus ``a (t - t0)^b exp(-(t - t0) / c)`` for ``t > t0``, else 0.

    Parameters
    ----------
    t:
        Times in seconds (numpy array or torch tensor; broadcasts with the parameters).
    t0:
        Arrival time (s).  a: amplitude.  b: shape (unitless).  c: time scale (s).
        The peak is at ``t0 + b c`` with height ``a (b c)^b e^-b``.
    """
    if hasattr(t, "clamp"):  # torch tensor
        import torch

        s = (t - t0).clamp_min(0.0)
        return torch.where(t > t0, a * s**b * torch.exp(-s / c), torch.zeros_like(s))
    t = np.asarray(t, dtype=np.float64)
    s = np.clip(t - t0, 0.0, None)
    return np.where(t > t0, a * s**b * np.exp(-s / c), 0.0)


def gamma_variate_peak(peak: float, t0: float, b: float, c: float, t) -> np.ndarray:
    """Gamma variate scaled so that its maximum equals ``peak``."""
    a = peak / ((b * c) ** b * np.exp(-b))
    return gamma_variate(t, t0, a, b, c)


def residue(t: np.ndarray, mtt: np.ndarray, shape: str = "exponential") -> np.ndarray:
    """Residue function ``R(t)`` (1 at 0, mean transit time ``mtt`` = integral of R).

    ``exponential``: ``exp(-t/MTT)``; ``box``: 1 for ``t < MTT``; ``gamma``: survival function of
    a gamma distribution with shape 3 and mean MTT (a dispersed, more realistic capillary bed).
    ``t`` and ``mtt`` broadcast; ``R = 0`` for ``t < 0``.
    """
    t = np.asarray(t, dtype=np.float64)
    mtt = np.asarray(mtt, dtype=np.float64)
    if shape == "exponential":
        r = np.exp(-np.clip(t, 0, None) / mtt)
    elif shape == "box":
        r = (t < mtt).astype(np.float64)
    elif shape == "gamma":
        from scipy import special

        k = 3.0
        r = special.gammaincc(k, np.clip(t, 0, None) / (mtt / k))
    else:
        raise ValueError(f"residue shape must be one of {RESIDUES}, got {shape!r}")
    return np.where(t >= 0, r, 0.0)


def default_aif(
    t: np.ndarray,
    *,
    t0: float = 5.0,
    peak: float = 350.0,
    b: float = 3.0,
    c: float = 1.5,
    recirculation: float = 0.1,
) -> np.ndarray:
    """Gamma-variate AIF (HU enhancement) with an optional delayed, dispersed recirculation."""
    first = gamma_variate_peak(peak, t0, b, c, t)
    if recirculation > 0:
        from scipy import special

        second = gamma_variate_peak(1.0, t0 + 2.5 * b * c, 2.0 * b, 1.5 * c, t)
        first_area = peak * np.exp(b) * special.gamma(b + 1) * c / (b**b)
        sec_area = np.exp(2 * b) * special.gamma(2 * b + 1) * 1.5 * c / ((2 * b) ** (2 * b))
        first = first + recirculation * first_area / sec_area * second
    return first


def tissue_curves(
    aif_fn,
    t: np.ndarray,
    flow: np.ndarray,
    mtt: np.ndarray,
    delay: np.ndarray,
    shape: str = "exponential",
) -> np.ndarray:
    """Tissue curves ``F (c_a * R(. - delay))(t)`` on a fine grid, sampled at ``t``.

    Parameters
    ----------
    aif_fn:
        Callable ``t -> c_a(t)`` (vectorised, seconds).
    t:
        Frame times ``(T,)`` (s), uniformly spaced from 0.
    flow, mtt, delay:
        ``(P,)`` arrays: flow ``F`` (1/s), MTT (s), delay (s).

    Returns
    -------
    np.ndarray
        ``(P, T)`` curves.
    """
    dt = float(t[1] - t[0])
    h = dt / _FINE
    n_f = len(t) * _FINE
    # midpoint rule on fine cells [m h, (m + 1) h]: second-order accurate, and jumps of the
    # residue that fall on the fine grid (onset at the delay, end of a box) sit on cell edges,
    # so they are integrated exactly.  (A left Riemann sum counts R(0) c_a(t) over a whole fine
    # cell instead of half of one -- a spurious impulse of area F h / 2 at the residue onset.)
    tm = (np.arange(n_f) + 0.5) * h
    ca = aif_fn(tm)
    r = residue(tm[None, :] - np.asarray(delay)[:, None], np.asarray(mtt)[:, None], shape)
    nfft = 1 << int(np.ceil(np.log2(2 * n_f)))
    full = np.fft.irfft(np.fft.rfft(ca, nfft)[None, :] * np.fft.rfft(r, nfft, axis=1), nfft)
    # c(t_n) = h sum_{m < n} c_a(tm_m) R(t_n - tm_m) = h full[n - 1]; c(0) = 0
    conv = np.concatenate([np.zeros((full.shape[0], 1)), full[:, : n_f - 1] * h], axis=1)
    return np.asarray(flow)[:, None] * conv[:, ::_FINE]


def flow_from_cbf(cbf: np.ndarray, rho: float = RHO, kh: float = KH) -> np.ndarray:
    """Tissue flow ``F`` (1/s) from CBF (mL/100 g/min): ``F = CBF rho / (6000 kH)``."""
    return np.asarray(cbf) * rho / (6000.0 * kh)


# --------------------------------------------------------------------------------------------
# Kudo-style grid
# --------------------------------------------------------------------------------------------
@dataclass
class GridPhantom:
    """Grid phantom with truth.

    Attributes
    ----------
    ctc: ``(Z, Y, X, T)`` float32 concentration (HU enhancement, noisy); Z indexes delay, Y CBF
        blocks, X MTT blocks.
    aif: ``(T,)`` float32 true AIF (HU enhancement, noise-free).
    cbf (mL/100 g/min), cbv (mL/100 g), mtt (s), delay (s), tmax (s): ``(Z, Y, X)`` truth.
    dt: s.  residue: residue shape.  noise_hu: noise standard deviation.
    """

    ctc: np.ndarray
    aif: np.ndarray
    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    delay: np.ndarray
    tmax: np.ndarray
    dt: float
    residue: str
    noise_hu: float


def grid_phantom(
    rng: np.random.Generator,
    *,
    cbf_values=(10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0),
    mtt_values=(2.0, 4.0, 6.0, 8.0, 12.0),
    delays=(0.0, 1.0, 2.0, 3.0),
    residue_shape: str = "exponential",
    block: int = 8,
    n_frames: int = 60,
    dt: float = 1.0,
    noise_hu: float = 0.0,
    aif_peak: float = 350.0,
) -> GridPhantom:
    """Kudo-style grid phantom: every CBF x MTT x delay combination as a ``block x block`` patch.

    Returns a :class:`GridPhantom` with shape ``(len(delays), len(cbf)*block, len(mtt)*block, T)``.
    Tmax truth equals the delay (all residue shapes peak at their onset).
    """
    if residue_shape not in RESIDUES:
        raise ValueError(f"residue_shape must be one of {RESIDUES}, got {residue_shape!r}")
    t = np.arange(n_frames) * dt
    cb, mt, de = np.meshgrid(
        np.asarray(cbf_values, float),
        np.asarray(mtt_values, float),
        np.asarray(delays, float),
        indexing="ij",
    )  # (C, M, D)
    curves = tissue_curves(
        lambda x: default_aif(x, peak=aif_peak),
        t,
        flow_from_cbf(cb.ravel()),
        mt.ravel(),
        de.ravel(),
        residue_shape,
    ).reshape(*cb.shape, n_frames)
    # (C, M, D, T) -> (D, C*block, M*block, T)
    vol = np.repeat(np.repeat(curves.transpose(2, 0, 1, 3), block, axis=1), block, axis=2)
    vol = vol + rng.normal(0.0, noise_hu, vol.shape) if noise_hu > 0 else vol

    def grid(a: np.ndarray) -> np.ndarray:
        g = np.repeat(np.repeat(a.transpose(2, 0, 1), block, axis=1), block, axis=2)
        return g.astype(np.float32)

    return GridPhantom(
        ctc=vol.astype(np.float32),
        aif=default_aif(t, peak=aif_peak).astype(np.float32),
        cbf=grid(cb),
        cbv=grid(cb * mt / 60.0),
        mtt=grid(mt),
        delay=grid(de),
        tmax=grid(de),
        dt=dt,
        residue=residue_shape,
        noise_hu=noise_hu,
    )


# --------------------------------------------------------------------------------------------
# brain-like case
# --------------------------------------------------------------------------------------------
@dataclass
class BrainCase:
    """A brain-like CTP case with ground truth.

    Attributes
    ----------
    ctp_hu: ``(Z, Y, X, T)`` float32 CT numbers (HU) incl. baseline, skull, air and noise.
    ctc: ``(Z, Y, X, T)`` float32 concentration = HU enhancement (``ctp_hu`` minus the true,
        noise-free baseline; so it carries the noise).
    aif: ``(T,)`` float32 true AIF (HU enhancement, noise-free).
    aif_location: ``(z, y, x)`` of a voxel fully inside the contralateral (unaffected) MCA.
    brain_mask, core_mask, penumbra_mask, vessel_mask, parenchyma_mask: bool ``(Z, Y, X)``.
    cbf (mL/100 g/min), cbv (mL/100 g), mtt (s), delay (s), tmax (s): float32 truth maps
        (0 outside the parenchyma).
    dt: s.  spacing: ``(dz, dy, dx)`` mm.
    """

    ctp_hu: np.ndarray
    ctc: np.ndarray
    aif: np.ndarray
    aif_location: tuple[int, int, int]
    brain_mask: np.ndarray
    core_mask: np.ndarray
    penumbra_mask: np.ndarray
    vessel_mask: np.ndarray
    parenchyma_mask: np.ndarray
    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    delay: np.ndarray
    tmax: np.ndarray
    dt: float
    spacing: tuple[float, float, float]


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    from scipy import ndimage

    f = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return f / (f.std() + 1e-12)


def brain_case(
    rng: np.random.Generator,
    *,
    n_slices: int = 4,
    size: int = 256,
    n_frames: int = 50,
    dt: float = 1.0,
    noise_hu: float = 2.0,
    lesion: bool = True,
    aif_peak: tuple[float, float] = (250.0, 450.0),
    spacing: tuple[float, float, float] = (5.0, 0.9, 0.9),
    artery_scale: float = 1.0,
) -> BrainCase:
    """Generate a brain-like 4D CTP case with an ischaemic lesion and known masks.

    Tissue classes (baseline HU; CBF mL/100 g/min; MTT s): grey matter (38; ~60; ~4), white matter
    (30; ~25; ~5), ventricles (8; no flow), arteries (42 + AIF, with a partial-volume rim; the
    MCA on the lesion side carries a delayed, dispersed bolus), a venous sinus (42 + delayed,
    dispersed AIF), skull (1000), scalp (20), air (-1000).  The lesion (one hemisphere, random position/size)
    has a severity field ``s`` in [0, 1]: CBF is multiplied by ``1 - 0.9 s``, MTT grows to
    ``~4 + 6 s`` and the delay to ``~9 s`` at the centre.  Truth masks follow the clinical
    definitions exactly: ``core = rCBF_true < 0.38`` (reference: median true CBF over the brain
    mask) and ``penumbra = Tmax_true > 6 s`` outside the core, both within the parenchyma.

    Parameters
    ----------
    rng:
        Random generator (everything random comes from it).
    n_slices, size, n_frames, dt:
        Shape ``(n_slices, size, size, n_frames)``, frame interval (s).
    noise_hu:
        Standard deviation of the Gaussian noise (HU) added to every voxel and frame.
    lesion:
        Whether to add an ischaemic lesion.
    artery_scale:
        Partial-volume factor of every arterial voxel's enhancement (1: the artery fills the
        voxel; 0.5: a thin artery, the AIF any selection finds is halved, so CBF/CBV from it
        are doubled). ``BrainCase.aif`` stays the true, unscaled AIF; the venous sinus (large,
        no partial volume) is not scaled.
    """
    if not 0.0 < artery_scale <= 1.0:
        raise ValueError(f"artery_scale must be in (0, 1], got {artery_scale}")
    z_n, n = n_slices, size
    t = np.arange(n_frames) * dt
    # ---- AIF -------------------------------------------------------------------------------
    t0 = rng.uniform(3.0, 7.0)
    b = rng.uniform(2.5, 3.5)
    c = rng.uniform(1.0, 1.6)
    peak = rng.uniform(*aif_peak)

    def aif_fn(x):
        return default_aif(x, t0=t0, peak=peak, b=b, c=c, recirculation=0.1)

    aif = aif_fn(t)
    # ---- anatomy ---------------------------------------------------------------------------
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    cy, cx = n / 2 + rng.uniform(-3, 3), n / 2 + rng.uniform(-3, 3)
    ry, rx = 0.40 * n, 0.33 * n
    zfac = 1.0 - 0.06 * np.abs(np.linspace(-1, 1, z_n)) if z_n > 1 else np.ones(1)
    brain = np.zeros((z_n, n, n), bool)
    skull = np.zeros((z_n, n, n), bool)
    head = np.zeros((z_n, n, n), bool)
    depth = np.zeros((z_n, n, n))
    wobble = 0.03 * _smooth_noise(rng, (n, n), n / 16)
    for z in range(z_n):
        rr = np.sqrt(((yy - cy) / (ry * zfac[z])) ** 2 + ((xx - cx) / (rx * zfac[z])) ** 2)
        rr = rr + wobble
        brain[z] = rr < 1.0
        skull[z] = (rr >= 1.0) & (rr < 1.08)
        head[z] = rr < 1.12
        depth[z] = (1.0 - rr) * min(ry, rx) * zfac[z]  # ~ distance to the brain edge (pixels)
    gm = brain & (depth < 0.03 * n)  # cortical ribbon
    # deep grey nuclei
    for sx in (-1, 1):
        d = np.sqrt(
            ((yy - cy + 0.02 * n) / (0.06 * n)) ** 2 + ((xx - cx - sx * 0.09 * n) / (0.04 * n)) ** 2
        )
        gm |= brain & (d < 1.0)[None]
    vent = np.zeros_like(brain)
    for sx in (-1, 1):
        d = np.sqrt(
            ((yy - cy + 0.05 * n) / (0.09 * n)) ** 2
            + ((xx - cx - sx * 0.035 * n) / (0.018 * n)) ** 2
        )
        vent |= brain & (d < 1.0)[None]
    gm &= ~vent
    wm = brain & ~gm & ~vent
    # vessels: arteries (MCA both sides, ACA pair), venous sinus (posterior midline)
    artery = np.zeros_like(brain)
    artery_pv = np.zeros_like(brain)
    vein = np.zeros_like(brain)
    zs = np.arange(z_n)
    art_centres = [
        (cy + 0.02 * n, cx - 0.21 * n),
        (cy + 0.02 * n, cx + 0.21 * n),
        (cy - 0.22 * n, cx - 0.012 * n),
        (cy - 0.22 * n, cx + 0.012 * n),
    ]
    art_core, art_ring = [], []
    for ay, ax in art_centres:
        d = np.hypot(yy - ay, xx - ax)
        art_core.append(np.broadcast_to((d <= 1.6)[None], brain.shape) & brain)
        art_ring.append(np.broadcast_to(((d > 1.6) & (d <= 2.6))[None], brain.shape) & brain)
        artery[zs] |= (d <= 1.6)[None]
        artery_pv[zs] |= ((d > 1.6) & (d <= 2.6))[None]
    dv = np.hypot(yy - (cy + ry * 0.9), xx - cx)
    for z in range(z_n):
        vein[z] = (dv <= 2.6 * zfac[z]) & brain[z]
    artery &= brain
    artery_pv &= brain & ~artery
    vessel = artery | artery_pv | vein
    parenchyma = (gm | wm) & ~vessel
    # ---- normal perfusion --------------------------------------------------------------------
    var = 1.0 + 0.08 * _smooth_noise(rng, (z_n, n, n), 6.0)
    cbf = np.where(gm, 60.0, 25.0) * var
    mtt = np.where(gm, 4.0, 5.0) * (1.0 + 0.05 * _smooth_noise(rng, (z_n, n, n), 8.0))
    side = rng.choice([-1.0, 1.0])
    delay = 0.5 + 0.5 * (1 + np.tanh(side * (xx - cx) / (0.2 * n)))[None] * rng.uniform(0, 1.0)
    delay = np.broadcast_to(delay, (z_n, n, n)).copy()
    # ---- lesion ------------------------------------------------------------------------------
    if lesion:
        ly = cy + rng.uniform(-0.15, 0.15) * n
        lx = cx + side * rng.uniform(0.12, 0.2) * n
        lr = rng.uniform(0.10, 0.16) * n
        ang = np.arctan2(yy - ly, xx - lx)
        shape_noise = (
            1.0
            + 0.15 * np.sin(3 * ang + rng.uniform(0, 6.3))
            + 0.1 * np.sin(5 * ang + rng.uniform(0, 6.3))
        )
        lz = rng.uniform(0, z_n - 1)
        sev = np.zeros((z_n, n, n))
        for z in range(z_n):
            zshrink = 1.0 - 0.5 * (abs(z - lz) / max(z_n - 1, 1))
            r = np.hypot(yy - ly, xx - lx) / (lr * shape_noise * zshrink)
            sev[z] = np.clip(1.6 * (1.0 - r), 0.0, 1.0)
        pen = np.clip(1.0 - np.hypot(yy - ly, xx - lx) / (1.7 * lr * shape_noise), 0.0, 1.0)
        pen = np.broadcast_to(pen, (z_n, n, n))
        cbf = cbf * (1.0 - 0.92 * sev) * (1.0 - 0.35 * np.clip(pen * 2.0, 0.0, 1.0) * (sev == 0))
        mtt = mtt + 6.0 * sev + 3.0 * np.clip(pen * 2.0, 0.0, 1.0)
        delay = delay + 9.0 * np.clip(pen * 2.2, 0.0, 1.0)
    cbf = np.where(parenchyma, cbf, 0.0)
    mtt = np.where(parenchyma, mtt, 0.0)
    delay = np.where(parenchyma, delay, 0.0)
    cbv = cbf * mtt / 60.0
    # ---- curves: quantise (MTT, delay) to a lookup table, scale by flow ------------------------
    conc = np.zeros((z_n, n, n, n_frames))
    idx = np.nonzero(parenchyma)
    mq = np.round(mtt[idx] / 0.05).astype(np.int64)
    dq = np.round(delay[idx] / 0.05).astype(np.int64)
    keys, inv = np.unique(np.stack([mq, dq], 1), axis=0, return_inverse=True)
    table = tissue_curves(aif_fn, t, np.ones(len(keys)), keys[:, 0] * 0.05, keys[:, 1] * 0.05)
    conc[idx] = flow_from_cbf(cbf[idx])[:, None] * table[inv.ravel()]
    conc[artery] = artery_scale * aif
    pv_tissue = tissue_curves(
        aif_fn, t, flow_from_cbf(np.array([40.0])), np.array([4.5]), np.array([0.5])
    )[0]
    conc[artery_pv] = 0.45 * artery_scale * aif + 0.55 * pv_tissue
    # the MCA on the lesion side carries a delayed (1.5 s), dispersed (gamma, mean 2 s) bolus of
    # the same area -- a plausible but wrong AIF choice downstream of the occlusion
    affected = 0 if side < 0 else 1
    if lesion:
        late = tissue_curves(aif_fn, t, np.array([0.5]), np.array([2.0]), np.array([1.5]), "gamma")[
            0
        ]
        conc[art_core[affected]] = artery_scale * late
        conc[art_ring[affected] & artery_pv] = 0.45 * artery_scale * late + 0.55 * pv_tissue
    # venous outflow: AIF dispersed through the whole brain (gamma residue, mean 6 s, delay 2 s),
    # area ~ 1.1x the AIF area
    vof = tissue_curves(
        aif_fn, t, np.array([1.1 / 6.0]), np.array([6.0]), np.array([2.0]), "gamma"
    )[0]
    conc[vein] = vof
    # ---- baseline HU and noise ---------------------------------------------------------------
    base = np.full((z_n, n, n), -1000.0)
    base[head] = 20.0  # scalp / soft tissue
    base[skull] = 1000.0
    base[brain] = 30.0
    base[gm] = 38.0
    base[vent] = 8.0
    base[vessel] = 42.0
    base = base + np.where(brain, 1.0 * _smooth_noise(rng, (z_n, n, n), 4.0), 0.0)
    noise = rng.normal(0.0, noise_hu, conc.shape) if noise_hu > 0 else 0.0
    ctp = base[..., None] + conc + noise
    ctc = conc + noise
    # ---- truth masks -------------------------------------------------------------------------
    brain_mask = brain & ~vent
    ref = np.median(cbf[brain_mask])
    core = parenchyma & (cbf / ref < CORE_THRESHOLD)
    tmax = np.where(parenchyma, delay, 0.0)
    penumbra = parenchyma & (tmax > PENUMBRA_TMAX) & ~core
    zc = z_n // 2
    ays, axs = np.nonzero(art_core[1 - affected][zc])  # contralateral (unaffected) MCA
    j = len(ays) // 2
    return BrainCase(
        ctp_hu=ctp.astype(np.float32),
        ctc=np.asarray(ctc, dtype=np.float32),
        aif=aif.astype(np.float32),
        aif_location=(int(zc), int(ays[j]), int(axs[j])),
        brain_mask=brain_mask,
        core_mask=core,
        penumbra_mask=penumbra,
        vessel_mask=vessel,
        parenchyma_mask=parenchyma,
        cbf=cbf.astype(np.float32),
        cbv=cbv.astype(np.float32),
        mtt=mtt.astype(np.float32),
        delay=delay.astype(np.float32),
        tmax=tmax.astype(np.float32),
        dt=float(dt),
        spacing=tuple(float(s) for s in spacing),
    )


__all__ = [
    "BrainCase",
    "GridPhantom",
    "RESIDUES",
    "brain_case",
    "default_aif",
    "flow_from_cbf",
    "gamma_variate",
    "gamma_variate_peak",
    "grid_phantom",
    "residue",
    "tissue_curves",
]
