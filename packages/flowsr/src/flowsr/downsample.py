"""Synthetic low-res 4D flow acquisition, as 4DFlowNet builds its training inputs.

Per frame and velocity component ``c``:

1. complex signal ``S = M exp(i pi v_c / venc_c)`` with magnitude ``M`` (``fluid_magnitude`` in the
   lumen, ``tissue_magnitude`` outside);
2. 3D FFT, a linear phase ramp that shifts the image by ``(factor - 1) / 2`` high-res voxels
   (so low-res voxel ``j`` is centred on its block of high-res voxels, at ``(j + 0.5) factor h``,
   the voxel-centre convention used everywhere in flowsr) and a central k-space crop to
   ``shape // factor`` (amplitude kept: the low-res image is scaled by ``N_lr / N_hr``);
3. complex white Gaussian noise of standard deviation ``sigma`` per real/imaginary part with
   ``20 log10(M_fluid / sigma) = snr_db`` (added in k-space with an orthonormal transform, so the
   image-domain noise has the same ``sigma``);
4. back to the image: ``v = angle(S_lr) / pi * venc_c`` and magnitude ``|S_lr|``.

So phase wraps at +-venc, and voxels with no signal (``tissue_magnitude = 0``) carry phase noise
spread over the whole (-venc, venc] range, as in real data. ``venc_c`` is the data maximum
``max_t |v_c|`` times ``venc_margin``, rounded up to ``venc_step`` (one value per component,
repeated for every frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowsr.config import DownsampleConfig
from flowsr.errors import FlowsrError


@dataclass(frozen=True, eq=False)
class LowRes:
    """Synthetic low-res series.

    Attributes
    ----------
    velocity : np.ndarray
        ``(3, T, X', Y', Z')`` float32 m/s, ``X' = X // factor`` etc.
    magnitude : np.ndarray
        ``(3, T, X', Y', Z')`` float32 magnitude images (a.u.), one per encoding.
    venc : np.ndarray
        ``(3, T)`` float32 VENC per component and frame (m/s).
    mask : np.ndarray
        ``(X', Y', Z')`` bool: low-res fluid mask (mean of the high-res mask over each block >= 0.5).
    dx_mm : float
        Low-res voxel size (mm).
    """

    velocity: np.ndarray
    magnitude: np.ndarray
    venc: np.ndarray
    mask: np.ndarray
    dx_mm: float


def choose_venc(velocity: np.ndarray, margin: float, step: float) -> np.ndarray:
    """VENC per component (m/s) from the data maximum: ``ceil(margin * max|v_c| / step) * step``.

    Parameters
    ----------
    velocity : np.ndarray
        ``(3, T, X, Y, Z)`` m/s.
    """
    vmax = np.abs(velocity).reshape(3, -1).max(axis=1).astype(np.float64) * margin
    venc = np.ceil(vmax / step) * step if step > 0 else vmax
    if np.any(venc <= 0):
        raise FlowsrError(
            "downsample: a velocity component is zero everywhere, so VENC (from the data "
            "maximum) would be 0; give a series with flow in every component"
        )
    return venc


def _centre_shift(k: np.ndarray, shift: float) -> np.ndarray:
    """Multiply k-space ``(..., X, Y, Z)`` by the ramp that moves the image by ``-shift`` voxels."""
    out = k
    for ax, n in zip((-3, -2, -1), k.shape[-3:], strict=True):
        ramp = np.exp(2j * np.pi * np.fft.fftfreq(n) * shift)
        shape = [1] * k.ndim
        shape[ax] = n
        out = out * ramp.reshape(shape)
    return out


def _crop_kspace(k: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    shifted = np.fft.fftshift(k, axes=(-3, -2, -1))
    sl = [slice(None)] * (k.ndim - 3)
    for n, m in zip(k.shape[-3:], out_shape, strict=True):
        start = n // 2 - m // 2
        sl.append(slice(start, start + m))
    return np.fft.ifftshift(shifted[tuple(sl)], axes=(-3, -2, -1))


def downsample(
    velocity: np.ndarray,
    mask: np.ndarray,
    dx_mm: float,
    config: DownsampleConfig | None = None,
    rng: np.random.Generator | None = None,
    venc: np.ndarray | None = None,
) -> LowRes:
    """Make a noisy low-res series from a high-res one (see the module docstring).

    Parameters
    ----------
    velocity : np.ndarray
        ``(3, T, X, Y, Z)`` high-res velocity (m/s).
    mask : np.ndarray
        ``(X, Y, Z)`` or ``(T, X, Y, Z)`` fluid mask (only frame 0 of a 4D mask sets magnitude
        when it is static; a 4D mask is used frame by frame).
    dx_mm : float
        High-res voxel size (mm).
    config : DownsampleConfig, optional
        Factor, SNR and VENC options.
    rng : np.random.Generator, optional
        Noise generator (default: ``default_rng(0)``).
    venc : np.ndarray, optional
        ``(3,)`` VENC per component (m/s); default from the data maximum.

    Returns
    -------
    LowRes
    """
    cfg = config or DownsampleConfig()
    rng = rng or np.random.default_rng(0)
    vel = np.asarray(velocity)
    if vel.ndim != 5 or vel.shape[0] != 3:
        raise FlowsrError(f"downsample: velocity must be (3, T, X, Y, Z), got shape {vel.shape}")
    if not np.all(np.isfinite(vel)):
        raise FlowsrError("downsample: velocity contains NaN or inf")
    f = cfg.factor
    shape = vel.shape[2:]
    if any(n % f for n in shape):
        raise FlowsrError(f"downsample: grid {shape} is not divisible by the factor {f}")
    lr_shape = tuple(n // f for n in shape)
    m = np.asarray(mask, dtype=bool)
    if m.shape not in (shape, (1, *shape), (vel.shape[1], *shape)):
        raise FlowsrError(f"downsample: mask shape {m.shape} does not match the grid {shape}")
    m4 = np.broadcast_to(m.reshape(-1, *shape), (vel.shape[1], *shape))
    v = np.asarray(venc, dtype=np.float64) if venc is not None else choose_venc(
        vel, cfg.venc_margin, cfg.venc_step
    )
    if v.shape != (3,) or np.any(~np.isfinite(v)) or np.any(v <= 0):
        raise FlowsrError(f"downsample: VENC must be 3 positive values (m/s), got {v}")
    sigma = cfg.fluid_magnitude / 10 ** (cfg.snr_db / 20.0)
    scale = float(np.prod(lr_shape)) / float(np.prod(shape))
    n_t = vel.shape[1]
    out_v = np.empty((3, n_t, *lr_shape), dtype=np.float32)
    out_m = np.empty_like(out_v)
    mag_hr = np.where(m4, cfg.fluid_magnitude, cfg.tissue_magnitude).astype(np.float64)
    norm = np.sqrt(float(np.prod(lr_shape)))
    for c in range(3):  # one vectorised FFT over all frames per component
        sig = mag_hr * np.exp(1j * np.pi * vel[c].astype(np.float64) / v[c])
        k = _centre_shift(np.fft.fftn(sig, axes=(1, 2, 3)), 0.5 * (f - 1))
        k = _crop_kspace(k, lr_shape)
        noise = rng.normal(0.0, sigma, (2, *k.shape))
        k = k * scale + norm * (noise[0] + 1j * noise[1])  # ortho-equivalent noise of std sigma
        img = np.fft.ifftn(k, axes=(1, 2, 3))
        out_v[c] = (np.angle(img) / np.pi * v[c]).astype(np.float32)
        out_m[c] = np.abs(img).astype(np.float32)
    lr_mask = m4[0].reshape(lr_shape[0], f, lr_shape[1], f, lr_shape[2], f).mean(axis=(1, 3, 5))
    venc_t = np.repeat(v[:, None], n_t, axis=1).astype(np.float32)
    return LowRes(out_v, out_m, venc_t, lr_mask >= 0.5, float(dx_mm) * f)
