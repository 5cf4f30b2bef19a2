"""Cross-checks of the lifting wavelets against PyWavelets' filter banks (issue 12).

Conventions, worked out here once and asserted below:

* **CDF 9/7 = pywt ``bior4.4``**, with no rescaling: pywt normalises ``dec_lo`` to sum ``sqrt(2)``
  (DC gain) and ``dec_hi`` to a Nyquist gain of ``sqrt(2)``; the lifting's ``LOW_SCALE =
  sqrt(2)/K`` and ``HIGH_SCALE = K/sqrt(2)`` (JPEG 2000's irreversible 9/7, DC gain 1 and
  Nyquist gain 2, times ``sqrt(2)`` and ``1/sqrt(2)``) give the same gains.
  **Sign**: pywt's high-pass centre tap is negative (``-0.7885``), the lifting's positive
  (JPEG 2000's ``+1.115 / sqrt(2)``): ``d = -cD``.
* **LeGall 5/3 = pywt ``bior2.2``** up to the scaling the integer lifting leaves out (it has
  none: DC gain 1, Nyquist gain 2): ``s = cA / sqrt(2)``, ``d = -sqrt(2) * cD``. The integer
  lifting rounds (``floor``) in both steps, so it equals the linear 5/3 only where no rounding
  happens: on inputs that are multiples of ``8**k`` for ``k`` one-axis passes (``x = 8m a``
  gives ``d`` multiples of ``4m`` and ``s`` multiples of ``m``, every ``floor`` exact); on
  other integers the rounding offsets are bounded (asserted below).
* **Sample offset**: pywt convolves without decimation phase offset, ``cA[j] = sum_t
  dec_lo[t] x[2j + 1 - t]``; its filters are zero-padded to an even length ``L`` (10 for
  bior4.4, 6 for bior2.2) and its ``mode="reflect"``/``"zero"`` outputs have
  ``floor((n + L - 1) / 2)`` samples. Lifting low sample ``k`` (centred on ``x[2k]``) is pywt
  sample ``k + L/2 - 3`` and high sample ``k`` (centred on ``x[2k+1]``) the same index of
  ``cD``: offset 2 for bior4.4, 1 for bior2.2.
* **Boundaries**: the lifting's whole-sample symmetric extension (``x[-1] = x[1]``) is pywt's
  ``mode="reflect"``, so with that mode *every* coefficient agrees, boundary ones included
  (asserted too). *Interior* coefficients (filter support inside the signal: low ``k`` with
  ``2k - 4 >= 0`` and ``2k + 4 <= n - 1``, high ``k`` with ``2k + 1 - 3 >= 0`` and ``2k + 4 <=
  n - 1`` for 9/7) do not depend on the extension at all, so they are checked against pywt's
  ``mode="zero"`` too.
* **Synthesis**: pywt's ``idwt`` only convolves the upsampled bands, so the bands are padded
  with random junk at pywt's offset; the reconstructed samples that do not see the junk
  (``4 <= i <= 2 * nd - 4`` for 9/7; ``2 <= i <= 2 * nd - 2`` for 5/3) must equal the lifting
  inverse of the same bands.

Everything is compared to an absolute 1e-6 on unit-scale data (the agreement is ~1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest

from wdrcodec.decomposition import forward, inverse
from wdrcodec.lifting import inverse_yx, lift_region
from wdrcodec.wavelets import apply_axis, fwd53, fwd97, inv53, inv97

pywt = pytest.importorskip("pywt")

TOL = 1e-6
SQ2 = np.sqrt(2.0)
# name, pywt offset, low scale (ours = scale * cA), high scale (ours = scale * cD)
BANKS = {"97": ("bior4.4", 2, 1.0, -1.0), "53": ("bior2.2", 1, 1 / SQ2, -SQ2)}
LENGTHS = [8, 9, 17, 37, 64, 65]


def _pywt_bands(x: np.ndarray, bank: str, mode: str = "reflect") -> tuple[np.ndarray, np.ndarray]:
    """pywt's single-level DWT of the 1D ``x`` mapped onto the lifting's bands (see module)."""
    name, off, lo, hi = BANKS[bank]
    cA, cD = pywt.dwt(np.asarray(x, dtype=np.float64), name, mode=mode)
    n = x.shape[0]
    return lo * cA[off : off + (n + 1) // 2], hi * cD[off : off + n // 2]


def _interior_97(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Low/high indices whose 9/7 analysis support (9 / 7 taps) lies inside ``[0, n)``."""
    k_lo = np.arange((n + 1) // 2)
    k_hi = np.arange(n // 2)
    return (
        k_lo[(2 * k_lo - 4 >= 0) & (2 * k_lo + 4 <= n - 1)],
        k_hi[(2 * k_hi + 1 - 3 >= 0) & (2 * k_hi + 1 + 3 <= n - 1)],
    )


def _numba_forward(x: np.ndarray, lossless: bool) -> list[np.ndarray]:
    """The 1D forward of every numba kernel: lines along axis 2, slabs along axes 0 and 1."""
    out = []
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = x.shape[0]
        r = np.array(x, dtype=np.int64 if lossless else np.float64).reshape(shape)
        lift_region(r, axis, lossless, True)
        out.append(r.reshape(-1))
    return out


def _numba_inverse(y: np.ndarray, lossless: bool) -> list[np.ndarray]:
    """The 1D inverse of every numba kernel, and (9/7) the fused X-then-Y one."""
    out = []
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = y.shape[0]
        r = np.array(y, dtype=np.int64 if lossless else np.float64).reshape(shape)
        lift_region(r, axis, lossless, False)
        out.append(r.reshape(-1))
    if not lossless:
        r = np.array(y, dtype=np.float64).reshape(1, 1, -1)
        inverse_yx(r)  # Y has length 1, so this is the X line kernel of the fused path
        out.append(r.reshape(-1))
        r = np.array(y, dtype=np.float64).reshape(1, -1, 1)
        inverse_yx(r)  # and the Y slab kernel of the fused path
        out.append(r.reshape(-1))
    return out


def test_filter_normalisation_matches_the_lifting_constants():
    """The gains the conventions above rely on, read off pywt's filters and the lifting."""
    for name in ("bior4.4", "bior2.2"):
        w = pywt.Wavelet(name)
        alt = (-1.0) ** np.arange(w.dec_len)
        assert np.sum(w.dec_lo) == pytest.approx(SQ2, abs=1e-12)
        assert np.sum(np.asarray(w.dec_hi) * alt) == pytest.approx(-SQ2, abs=1e-12)
    n = 64
    for f, dc, nyq in ((fwd97, SQ2, SQ2), (fwd53, 1, 2)):
        ones = f(np.full(n, 8, dtype=np.int64) if f is fwd53 else np.ones(n))
        alt = f(np.where(np.arange(n) % 2, -8, 8) if f is fwd53 else (-1.0) ** np.arange(n))
        scale = 8.0 if f is fwd53 else 1.0
        assert ones[n // 4] / scale == pytest.approx(dc, abs=1e-12)
        assert abs(alt[n // 2 + n // 4]) / scale == pytest.approx(nyq, abs=1e-12)


@pytest.mark.parametrize("n", LENGTHS)
def test_cdf97_analysis_1d_matches_bior44(n):
    x = np.random.default_rng(n).normal(size=n)
    ref_lo, ref_hi = _pywt_bands(x, "97")
    z_lo, z_hi = _pywt_bands(x, "97", mode="zero")
    i_lo, i_hi = _interior_97(n)
    ns = (n + 1) // 2
    for y in [fwd97(x), *_numba_forward(x, False)]:
        lo, hi = y[:ns], y[ns:]
        np.testing.assert_allclose(lo[i_lo], z_lo[i_lo], rtol=0, atol=TOL)  # interior
        np.testing.assert_allclose(hi[i_hi], z_hi[i_hi], rtol=0, atol=TOL)
        np.testing.assert_allclose(lo, ref_lo, rtol=0, atol=TOL)  # every coefficient
        np.testing.assert_allclose(hi, ref_hi, rtol=0, atol=TOL)
    if n >= 17:  # the interior is not empty, and "zero" differs outside it (a real check)
        assert i_lo.size and i_hi.size
        assert np.abs(fwd97(x)[:ns] - z_lo).max() > 1e-3


@pytest.mark.parametrize("n", [37, 64, 65])
def test_cdf97_synthesis_1d_matches_bior44(n):
    rng = np.random.default_rng(100 + n)
    ns, nd = (n + 1) // 2, n // 2
    s, d = rng.normal(size=ns), rng.normal(size=nd)
    name, off, lo, hi = BANKS["97"]
    # pywt's band length for n samples; junk outside the lifting's bands
    m = (n + pywt.Wavelet(name).dec_len - 1) // 2
    cA, cD = rng.normal(size=m) * 50, rng.normal(size=m) * 50
    cA[off : off + ns] = s / lo
    cD[off : off + nd] = d / hi
    ref = pywt.idwt(cA, cD, name, mode="reflect")[:n]
    inner = np.arange(4, 2 * nd - 3)
    y = np.concatenate([s, d])
    for x in [inv97(y), *_numba_inverse(y, False)]:
        np.testing.assert_allclose(x[inner], ref[inner], rtol=0, atol=TOL)
    assert np.abs(inv97(y)[:2] - ref[:2]).max() > 1e-3  # the junk does reach the ends


@pytest.mark.parametrize("n", LENGTHS)
def test_legall53_analysis_1d_matches_bior22(n):
    """Exact where the integer lifting does not round (multiples of 8); bounded elsewhere."""
    rng = np.random.default_rng(200 + n)
    a = rng.integers(-500, 500, size=n)
    x = 8 * a
    ref_lo, ref_hi = _pywt_bands(x, "53")
    ns = (n + 1) // 2
    for y in [fwd53(x), *_numba_forward(x, True)]:
        np.testing.assert_allclose(y[:ns], ref_lo, rtol=0, atol=TOL * 8)
        np.testing.assert_allclose(y[ns:], ref_hi, rtol=0, atol=TOL * 8)
    # any integers: d = x_odd - floor(mean of neighbours) is the linear d plus 0 or 1/2, and
    # s = x_even + floor((d_l + d_r + 2) / 4) the linear s plus a value in (-1/2, 3/4]
    xi = rng.integers(-32768, 65536, size=n)
    lin_lo, lin_hi = _pywt_bands(xi, "53")
    y = fwd53(xi)
    e_hi, e_lo = y[ns:] - lin_hi, y[:ns] - lin_lo
    assert e_hi.min() >= -TOL and e_hi.max() <= 0.5 + TOL
    assert e_lo.min() > -0.5 - TOL and e_lo.max() <= 0.75 + TOL
    np.testing.assert_allclose(np.modf(2 * e_hi + 1e-9)[0], 0, atol=1e-6)  # 0 or 1/2 exactly


@pytest.mark.parametrize("n", [17, 64, 65])
def test_legall53_synthesis_1d_matches_bior22(n):
    """Bands with ``s`` even and ``d`` multiples of 8 invert without rounding."""
    rng = np.random.default_rng(300 + n)
    ns, nd = (n + 1) // 2, n // 2
    s, d = 2 * rng.integers(-300, 300, size=ns), 8 * rng.integers(-300, 300, size=nd)
    name, off, lo, hi = BANKS["53"]
    m = (n + pywt.Wavelet(name).dec_len - 1) // 2
    cA, cD = rng.normal(size=m) * 500, rng.normal(size=m) * 500
    cA[off : off + ns] = s / lo
    cD[off : off + nd] = d / hi
    ref = pywt.idwt(cA, cD, name, mode="reflect")[:n]
    inner = np.arange(2, 2 * nd - 1)
    y = np.concatenate([s, d]).astype(np.int64)
    for x in [inv53(y), *_numba_inverse(y, True)]:
        np.testing.assert_allclose(x[inner], ref[inner], rtol=0, atol=TOL)


def _pywt_cascade(x: np.ndarray, bank: str, levels: int) -> np.ndarray:
    """Multi-level dyadic 3D DWT built from pywt's ``dwtn`` (mode ``reflect``), each level on
    the lifting's low band, laid out as :func:`wdrcodec.decomposition.forward` does (low band
    first along every axis)."""
    name, off, lo, hi = BANKS[bank]
    out = np.array(x, dtype=np.float64)
    cur = out.shape
    for _ in range(levels):
        bands = pywt.dwtn(out[: cur[0], : cur[1], : cur[2]], name, mode="reflect")
        halves = [((n + 1) // 2, n // 2) for n in cur]
        for key, c in bands.items():
            sl_out, sl_c, scale = [], [], 1.0
            for ax, ch in enumerate(key):
                ns, nd = halves[ax]
                if ch == "a":
                    sl_out.append(slice(0, ns))
                    sl_c.append(slice(off, off + ns))
                    scale *= lo
                else:
                    sl_out.append(slice(ns, ns + nd))
                    sl_c.append(slice(off, off + nd))
                    scale *= hi
            out[tuple(sl_out)] = scale * c[tuple(sl_c)]
        cur = tuple(h[0] for h in halves)
    return out


@pytest.mark.parametrize("shape", [(9, 20, 17), (16, 16, 16), (12, 23, 32)])
def test_cdf97_3d_multilevel_matches_bior44(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    ref = _pywt_cascade(x, "97", 2)
    np.testing.assert_allclose(forward(x, (2, 2, 2), False, False), ref, rtol=0, atol=TOL)
    ref1 = _pywt_cascade(x, "97", 1)
    y = x.copy()
    for axis in range(3):
        apply_axis(y, axis, fwd97)
    np.testing.assert_allclose(y, ref1, rtol=0, atol=TOL)
    # inverse: the numba decomposition inverse (fused X-Y pass + Z slabs) reproduces x from
    # pywt's coefficients, i.e. it is the synthesis bank of bior4.4
    np.testing.assert_allclose(inverse(ref, (2, 2, 2), False, False), x, rtol=0, atol=TOL)
    z = ref1.copy()
    for axis in (2, 1, 0):
        apply_axis(z, axis, inv97)
    np.testing.assert_allclose(z, x, rtol=0, atol=TOL)


@pytest.mark.parametrize("shape", [(9, 20, 17), (12, 16, 11)])
def test_legall53_3d_matches_bior22(shape):
    """One 3D level needs inputs that are multiples of 8**3 not to round, two levels 8**6;
    compared after dividing by that factor (unit-scale integers)."""
    rng = np.random.default_rng(sum(shape) + 1)
    a = rng.integers(-50, 50, size=shape)
    for levels, m in ((1, 8**3), (2, 8**6)):
        ref = _pywt_cascade(a.astype(np.float64), "53", levels)
        lv = (levels,) * 3
        y = forward(a * m, lv, True, False)
        np.testing.assert_allclose(y / m, ref, rtol=0, atol=TOL)
        np.testing.assert_array_equal(inverse(y, lv, True, False), a * m)
