"""Pulsatile (Womersley) pipe flow: a physiological flow waveform and its radial profiles.

For harmonic ``n`` of angular frequency ``w_n = 2 pi n f`` in a rigid pipe of radius ``R``, the
axial velocity profile driven by an oscillating pressure gradient is (Womersley 1955)

.. math:: g_n(\\eta) = 1 - \\frac{J_0(\\Lambda_n \\eta)}{J_0(\\Lambda_n)},\\qquad
          \\Lambda_n = i^{3/2}\\,\\alpha_n,\\quad \\alpha_n = R\\sqrt{w_n/\\nu}

with ``eta = r / R``. Its cross-sectional mean is ``1 - 2 J_1(L) / (L J_0(L))``. Dividing by that
mean gives a profile of unit mean velocity, so a prescribed flow rate ``Q_n`` becomes the velocity
``Q_n / (pi R^2) * g_n / mean(g_n)``. Harmonic 0 is Poiseuille: ``2 (1 - eta^2)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import jv

SYSTOLE_FRACTION = 0.35
"""Fraction of the cardiac cycle taken by forward systolic flow in :func:`aortic_waveform`."""


class Waveform(NamedTuple):
    """A periodic flow waveform ``q(t) = Re sum_n c_n exp(i 2 pi n t / period)``.

    Attributes
    ----------
    coefficients : np.ndarray
        ``(H + 1,)`` complex one-sided Fourier coefficients (``c_0`` real mean, ``c_n`` already
        doubled for ``n >= 1``), unit-free (peak of the band-limited waveform is 1).
    """

    coefficients: np.ndarray

    def __call__(self, phase: np.ndarray) -> np.ndarray:
        """Waveform at cycle phases ``phase`` (fraction of the period, any shape)."""
        n = np.arange(self.coefficients.size)
        ph = np.asarray(phase, dtype=np.float64)[..., None]
        return np.real(np.exp(2j * np.pi * n * ph) @ self.coefficients[:, None])[..., 0]


def aortic_waveform(harmonics: int, samples: int = 1024) -> Waveform:
    """Band-limited aortic flow waveform: systolic ejection, brief backflow, small diastolic flow.

    Parameters
    ----------
    harmonics : int
        Number of Fourier harmonics kept (>= 1).
    samples : int
        Samples of the analytic waveform used for the FFT.

    Returns
    -------
    Waveform
        Scaled so that its maximum over the cycle is 1.
    """
    tau = np.arange(samples) / samples
    ts = SYSTOLE_FRACTION
    q = np.where(tau < ts, np.sin(np.pi * tau / ts) ** 2, 0.0)
    back = (tau >= ts) & (tau < ts + 0.12)
    q = q - 0.12 * back * np.sin(np.pi * (tau - ts) / 0.12)
    q = q + 0.06 * (tau >= ts + 0.12) * np.exp(-(tau - ts - 0.12) / 0.3)
    spec = np.fft.rfft(q) / samples
    coef = spec[: harmonics + 1].copy()
    coef[1:] *= 2.0
    wave = Waveform(coef)
    peak = float(np.max(wave(tau)))
    return Waveform(coef / peak)


def womersley_profiles(eta: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Unit-mean Womersley profiles ``g_n(eta) / mean(g_n)`` for every harmonic.

    Parameters
    ----------
    eta : np.ndarray
        ``(N,)`` normalised radius ``r / R`` in [0, 1].
    alphas : np.ndarray
        ``(H + 1,)`` Womersley numbers; ``alphas[0]`` must be 0 (steady Poiseuille).

    Returns
    -------
    np.ndarray
        ``(N, H + 1)`` complex profiles; column ``n`` has cross-sectional mean 1.
    """
    eta = np.asarray(eta, dtype=np.float64)[:, None]
    out = np.empty((eta.shape[0], alphas.size), dtype=np.complex128)
    out[:, 0] = 2.0 * (1.0 - eta[:, 0] ** 2)
    if alphas.size > 1:
        lam = np.asarray(alphas[1:], dtype=np.float64) * np.exp(0.75j * np.pi)
        j0 = jv(0, lam)
        mean = 1.0 - 2.0 * jv(1, lam) / (lam * j0)
        out[:, 1:] = (1.0 - jv(0, lam[None, :] * eta) / j0[None, :]) / mean[None, :]
    return out
