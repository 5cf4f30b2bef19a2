"""Weighted Mean Frequencies (WMF), the paper's eqs. (1)-(3).

For each voxel and velocity component ``u(t)``, ``t = 0..T-1`` (one cardiac cycle):

.. math:: E_k(u) = |\\mathrm{FFT}(u)_k|^2,\\qquad
          \\mathrm{WMF}(u) = \\frac{\\sum_{k=1}^{n} E_k(u) f_k}{\\sum_{k=1}^{n} E_k(u)},\\qquad
          \\mathrm{WMF}_{min} = \\min(\\mathrm{WMF}_u, \\mathrm{WMF}_v, \\mathrm{WMF}_w)

over the ``n`` strictly positive frequencies ``f_k = k / (T dt)``.

Choices (documented, tested):

- **Unit.** Hz when the frame interval ``dt`` (s) is given; otherwise cycles per frame
  (``f_k = k / T``, so the Nyquist frequency is 0.5). :func:`wmf_feature` divides by the
  Nyquist frequency ``1 / (2 dt)`` so the network input is unit-free in (0, 1) either way.
- **Nyquist bin.** For even ``T`` the bin ``k = T/2`` is excluded: it is not a strictly positive
  frequency in the FFT's convention (``numpy.fft.fftfreq`` labels it ``-1/(2 dt)``), being the
  alias of itself. So ``n = ceil(T/2) - 1`` and ``T >= 3`` frames are needed.
- **Zero energy.** A voxel with no temporal variation at all (``sum E_k = 0``, e.g. a noise-free
  zero background) gets the unweighted mean of the positive frequencies, the value white noise
  has on average.
- Pulsatile flow puts its energy in the first harmonics (low WMF); noise spreads it evenly (WMF
  near the middle of the band).
"""

from __future__ import annotations

import numpy as np

from flowsr.errors import FlowsrError


def _positive_bins(n_frames: int, what: str) -> int:
    n = (n_frames + 1) // 2 - 1
    if n < 1:
        raise FlowsrError(
            f"{what}: WMF needs the time axis (at least 3 frames of one cardiac cycle), got "
            f"{n_frames} frame(s); use a model trained without WMF (--no-model-use-wmf) for "
            "single-frame data"
        )
    return n


def weighted_mean_frequency(
    series: np.ndarray, dt_s: float | None = None, axis: int = 0, what: str = "WMF"
) -> np.ndarray:
    """WMF of one component, eq. (2), along ``axis`` (the time axis).

    Parameters
    ----------
    series : np.ndarray
        Velocity (or phase) component, e.g. ``(T, X, Y, Z)``.
    dt_s : float, optional
        Frame interval (s): the result is in Hz. Without it: cycles per frame.
    axis : int
        Time axis.
    what : str
        Name used in error messages (file or option).

    Returns
    -------
    np.ndarray
        The input shape without ``axis``, float32.
    """
    x = np.moveaxis(np.asarray(series, dtype=np.float64), axis, 0)
    n_t = x.shape[0]
    n = _positive_bins(n_t, what)
    if dt_s is not None and not (np.isfinite(dt_s) and dt_s > 0):
        raise FlowsrError(f"{what}: the frame interval must be > 0 s, got {dt_s}")
    energy = np.abs(np.fft.rfft(x, axis=0)[1 : n + 1]) ** 2
    freqs = np.arange(1, n + 1) / (n_t * (dt_s if dt_s is not None else 1.0))
    total = energy.sum(axis=0)
    num = np.tensordot(freqs, energy, axes=(0, 0))
    flat = float(freqs.mean())
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, num / np.where(total > 0, total, 1.0), flat)
    return out.astype(np.float32)


def wmf_min(velocity: np.ndarray, dt_s: float | None = None, what: str = "WMF") -> np.ndarray:
    """``WMF_min`` of eq. (3): per voxel minimum of the three components' WMF.

    Parameters
    ----------
    velocity : np.ndarray
        ``(3, T, X, Y, Z)`` m/s.
    dt_s : float, optional
        Frame interval (s); result in Hz, else cycles per frame.

    Returns
    -------
    np.ndarray
        ``(X, Y, Z)`` float32.
    """
    vel = np.asarray(velocity)
    if vel.ndim < 2 or vel.shape[0] != 3:
        raise FlowsrError(f"{what}: velocity must be (3, T, ...), got shape {vel.shape}")
    return np.min(
        np.stack([weighted_mean_frequency(vel[c], dt_s, 0, what) for c in range(3)]), axis=0
    )


def wmf_feature(velocity: np.ndarray, what: str = "WMF") -> np.ndarray:
    """The network's WMF input: ``WMF_min`` divided by the Nyquist frequency, in (0, 1).

    Independent of ``dt`` (``WMF_min`` in Hz times ``2 dt`` equals it in cycles per frame
    times 2).
    """
    return (2.0 * wmf_min(velocity, None, what)).astype(np.float32)
