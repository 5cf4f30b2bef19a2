"""Automatic dyadic/packet choice (wdrcodec.choose): checked against real encodes of both.

Every case encodes the volume both ways with the real codec and checks that the choice picks
the better one where one is clearly better (precondition asserted: the gap is at least 0.3 dB
or 3% of the lossless size), plus the model's building blocks and error paths.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import wdrcodec
from medshared.metrics import psnr
from wdrcodec import WdrError
from wdrcodec.choose import (
    ChoiceConfig,
    bit_lengths,
    choose_from_magnitudes,
    choose_packet,
    rd_curve,
)
from wdrcodec.decomposition import forward
from wdrcodec.layout import make_layout


def _texture(rng: np.random.Generator, shape: tuple[int, ...], smooth: float) -> np.ndarray:
    """Gaussian noise low-passed by ``exp(-smooth * |k|**2)`` over the given axes (FFT)."""
    f = np.fft.fftn(rng.normal(size=shape))
    k = np.meshgrid(*(np.fft.fftfreq(n) for n in shape), indexing="ij")
    return np.real(np.fft.ifftn(f * np.exp(-smooth * sum(kk**2 for kk in k))))


def _u16(x: np.ndarray) -> np.ndarray:
    x = (x - x.min()) / (x.max() - x.min())
    return np.rint(500 + 2500 * x).astype(np.uint16)


def oversampled_z() -> np.ndarray:
    """``(33, 64, 64)``: 5 smooth slices linearly interpolated 8x along Z (a resampled,
    thin-slice-like volume: the slice axis far smoother than the plane)."""
    rng = np.random.default_rng(0)
    s = np.stack([_texture(rng, (64, 64), 600.0) for _ in range(5)])
    zs = np.linspace(0, 4, 33)
    i0 = np.minimum(np.floor(zs).astype(int), 3)
    w = (zs - i0)[:, None, None]
    return _u16(s[i0] * (1 - w) + s[i0 + 1] * w)


def piecewise_iso() -> np.ndarray:
    """``(24, 64, 64)``: isotropic piecewise-constant regions with texture (sharp 3D edges in
    every direction, as in a segmented or CT-like volume): dyadic territory."""
    rng = np.random.default_rng(1)
    shape = (24, 64, 64)
    return _u16(np.sign(_texture(rng, shape, 300.0)) + 0.3 * _texture(rng, shape, 900.0))


def _q4(vol: np.ndarray) -> np.ndarray:
    return vol.reshape((1,) * (4 - vol.ndim) + vol.shape).astype(np.int64)


def _choose(vol: np.ndarray, **kw) -> object:
    q4 = _q4(vol)
    lossless = kw.pop("lossless", False)
    mean = float(np.rint(q4.mean())) if lossless else float(q4.mean())
    return choose_packet(q4, np.ones(q4.shape[:2], bool), 5, lossless, mean, **kw)


def _psnr_both(vol: np.ndarray, **kw) -> tuple[float, float]:
    return tuple(
        psnr(vol, wdrcodec.decode(wdrcodec.encode(vol, packet=p, **kw)), data_range="ref")
        for p in (False, True)
    )


@pytest.fixture(scope="module")
def volumes(dipy_volume) -> dict[str, np.ndarray]:
    return {"oversampled": oversampled_z(), "piecewise": piecewise_iso(), "dipy": dipy_volume}


@pytest.mark.parametrize("name", ["oversampled", "piecewise", "dipy"])
@pytest.mark.parametrize("bpv", [0.5, 2.0])
def test_choice_picks_the_better_encode(volumes, name, bpv):
    vol = volumes[name]
    dy, pk = _psnr_both(vol, bpv=bpv)
    assert abs(pk - dy) >= 0.3, f"not a clear case: dyadic {dy:.2f}, packet {pk:.2f} dB"
    choice = _choose(vol, bpv=bpv)
    assert choice.packet == (pk > dy), (name, bpv, dy, pk, choice.reason)
    assert math.copysign(1.0, choice.gain_db) == math.copysign(1.0, pk - dy)
    assert choice.sampled == vol.size  # the whole volume is modelled


def test_gain_follows_the_real_gap(volumes):
    """The modelled gain is within 2 dB of the measured one (a wrong sign or a wild value, as a
    position-blind count gives on smooth volumes, would not be)."""
    for name in ("oversampled", "piecewise"):
        dy, pk = _psnr_both(volumes[name], bpv=1.0)
        assert abs(_choose(volumes[name], bpv=1.0).gain_db - (pk - dy)) < 2.0


@pytest.mark.parametrize("name", ["oversampled", "piecewise"])
def test_lossless_choice_by_size(volumes, name):
    vol = volumes[name]
    dy, pk = (len(wdrcodec.encode(vol, lossless=True, packet=p)) for p in (False, True))
    assert abs(pk / dy - 1) >= 0.03
    choice = _choose(vol, lossless=True)
    assert choice.packet == (pk < dy)
    assert math.isnan(choice.gain_db)
    assert abs(choice.size_ratio - pk / dy) < 0.05  # the modelled size ratio, measured one


def test_psnr_target_and_lossy_prefix(volumes):
    vol = volumes["oversampled"]
    choice = _choose(vol, psnr=70.0, psnr_peak=float(vol.max() - vol.min()))
    dy, pk = (len(wdrcodec.encode(vol, psnr=70.0, packet=p, psnr_range="ref")) for p in (0, 1))
    assert choice.packet and pk < dy
    # a lossy prefix of the lossless (LeGall 5/3) stream
    dyl, pkl = _psnr_both(vol, bpv=1.0, lossless=True)
    assert pkl > dyl + 0.3 and _choose(vol, bpv=1.0, lossless=True).packet


def test_from_magnitudes_agrees(volumes):
    """The variant that takes the coder's scan-ordered magnitudes (no transform of its own)."""
    for name, want in (("oversampled", True), ("piecewise", False)):
        q4 = _q4(volumes[name])
        g = np.ones(q4.shape[:2], bool)
        mags = []
        for packet in (False, True):
            lay = make_layout(q4.shape, g, 5, packet)
            blk = lay.blocks[0]
            coef = forward(q4[0].astype(np.float64) - q4.mean(), blk.lv, False, packet)
            mags.append(np.rint(np.abs(coef.ravel()[lay.order]) * 16).astype(np.int64))
        got = choose_from_magnitudes(*mags, False, payload_bits=1.0 * q4.size)
        ref = _choose(volumes[name], bpv=1.0)
        assert got.packet == ref.packet == want
        assert abs(got.gain_db - ref.gain_db) < 0.5
        assert choose_from_magnitudes(*mags, False, mse=1.0).packet == want


def test_series_and_grouping(volumes):
    vol = volumes["oversampled"]
    series = np.stack([vol, vol[::-1]])  # (T, Z, Y, X)
    q4 = series.astype(np.int64)
    both = choose_packet(q4, np.ones((2, 33), bool), 5, False, float(q4.mean()), bpv=1.0)
    assert both.packet and both.sampled == series.size
    one = choose_packet(
        q4,
        np.ones((2, 33), bool),
        5,
        False,
        float(q4.mean()),
        bpv=1.0,
        config=ChoiceConfig(max_volumes=1),
    )
    assert one.packet and one.sampled == vol.size
    # MCPD-like grouping: only 12 slices form the 3D block, the rest are coded in 2D
    g = np.zeros((1, 33), bool)
    g[0, 10:22] = True
    part = choose_packet(q4[:1], g, 5, False, float(q4.mean()), bpv=1.0)
    assert part.sampled == 12 * 64 * 64


def test_no_slice_levels_means_same_transform():
    vol = oversampled_z()[:3]  # 3 slices: no Z levels, both decompositions are the same
    choice = _choose(vol, bpv=1.0)
    assert not choice.packet and choice.sampled == 0 and "same transform" in choice.reason
    a, b = (wdrcodec.encode(vol, bpv=1.0, packet=p) for p in (False, True))
    assert np.array_equal(wdrcodec.decode(a), wdrcodec.decode(b))
    q4 = _q4(oversampled_z())
    two_d = choose_packet(q4, np.zeros(q4.shape[:2], bool), 5, False, 0.0, bpv=1.0)
    assert not two_d.packet and two_d.sampled == 0


def test_bit_lengths_exact():
    rng = np.random.default_rng(3)
    m = np.concatenate([[0, 1, 2, 3, 4, 7, 8, 2**40 - 1, 2**40], rng.integers(0, 2**30, 500)])
    assert bit_lengths(m, True).tolist() == [int(v).bit_length() for v in m]
    c = rng.normal(0, 50, 1000)
    want = [int(v).bit_length() for v in np.floor(np.abs(c) * 16).astype(np.int64)]
    assert bit_lengths(c, False).tolist() == want


def test_rd_curve_properties():
    rng = np.random.default_rng(4)
    m = np.floor(np.abs(rng.laplace(0, 40, 20000))).astype(np.int64)
    bl = bit_lengths(m, True)
    counts = np.bincount(bl, minlength=66).astype(float)
    energy = np.bincount(bl, weights=m.astype(float) ** 2, minlength=66)
    full = rd_curve(bl, counts, energy, lossless=True)
    assert np.all(np.diff(full.bits) > 0) and np.all(np.diff(full.dist) <= 0)
    assert full.dist[0] == pytest.approx(float((m.astype(float) ** 2).sum()))
    assert full.dist[-1] == 0.0 and len(full.bits) == int(m.max()).bit_length() + 1
    # about the entropy of the values (a sanity band, not a tight bound)
    h = -np.sum((p := np.bincount(m) / m.size)[p > 0] * np.log2(p[p > 0])) * m.size
    assert 0.8 * h < full.bits[-1] < 1.6 * h
    cut = rd_curve(bl, counts, energy, lossless=True, max_bits=full.bits[-1] / 4)
    assert cut.bits[-1] > full.bits[-1] / 4 and len(cut.bits) < len(full.bits)
    np.testing.assert_allclose(cut.bits, full.bits[: len(cut.bits)])
    # a random scan order costs more than the same magnitudes sorted (gaps, not counts)
    srt = rd_curve(np.sort(bl)[::-1], counts, energy, lossless=True)
    assert srt.bits[-1] < full.bits[-1]


def test_errors():
    q4 = _q4(oversampled_z())
    g = np.ones(q4.shape[:2], bool)
    with pytest.raises(WdrError, match="integer array"):
        choose_packet(q4.astype(float), g, 5, False, 0.0, bpv=1.0)
    with pytest.raises(WdrError, match="integer array"):
        choose_packet(q4[0], g, 5, False, 0.0, bpv=1.0)
    with pytest.raises(WdrError, match="grouping"):
        choose_packet(q4, g[:, :5], 5, False, 0.0, bpv=1.0)
    with pytest.raises(WdrError, match="bpv"):
        choose_packet(q4, g, 5, False, 0.0, bpv=0.0)
    with pytest.raises(WdrError, match="rate"):
        choose_packet(q4, g, 5, False, 0.0)
    with pytest.raises(WdrError, match="psnr"):
        choose_packet(q4, g, 5, False, 0.0, psnr=math.inf)
    with pytest.raises(WdrError, match="margin_db"):
        ChoiceConfig(margin_db=-1)
    with pytest.raises(WdrError, match="max_volumes"):
        ChoiceConfig(max_volumes=0)
    with pytest.raises(WdrError, match="one length"):
        choose_from_magnitudes(np.ones(4, np.int64), np.ones(5, np.int64), True)
    with pytest.raises(WdrError, match="payload_bits"):
        choose_from_magnitudes(np.ones(4, np.int64), np.ones(4, np.int64), False, payload_bits=-1)


def test_object_mask_shape_adaptive(volumes):
    """With the encoder's object mask (shape-adaptive mode, on by default for a volume with a
    large constant background) the model sees only the object's coefficients, as the coder."""
    pytest.importorskip("wdrcodec.shape_adaptive")
    from wdrcodec.mask import choose_mask

    vol = volumes["oversampled"].copy()
    zz, yy, xx = np.meshgrid(*(np.linspace(-1, 1, n) for n in vol.shape), indexing="ij")
    vol[yy**2 + xx**2 > 0.8] = 0  # a cylinder of object in a zero background
    q4 = _q4(vol)
    om = choose_mask(q4, "auto", "3d")
    assert om is not None  # the encodes below are shape-adaptive
    mean = float(np.rint(q4[om.mask].sum() / om.count))
    g = np.ones(q4.shape[:2], bool)
    dy, pk = (len(wdrcodec.encode(vol, lossless=True, packet=p)) for p in (False, True))
    choice = choose_packet(q4, g, 5, True, mean, mask4=om.mask)
    assert choice.packet == (pk < dy) and abs(pk / dy - 1) >= 0.03
    assert abs(choice.size_ratio - pk / dy) < 0.03
    assert choice.sampled == om.count
    with pytest.raises(WdrError, match="mask4"):
        choose_packet(q4, g, 5, True, mean, mask4=om.mask[:, :3])


@pytest.mark.parametrize("name", ["oversampled", "piecewise"])
@pytest.mark.parametrize("target", [{"bpv": 1.0}, {"psnr": 45.0}, {"lossless": True}])
def test_auto_packet_encode_matches_the_better_decomposition(volumes, name, target):
    """``encode(auto_packet=True)`` codes the file exactly as the chosen decomposition does."""
    vol = volumes[name]
    auto = wdrcodec.encode(vol, auto_packet=True, **target)
    both = {p: wdrcodec.encode(vol, packet=p, **target) for p in (False, True)}
    chosen = wdrcodec.read_header(auto).packet
    assert auto == both[chosen]
    if "bpv" in target:
        dy, pk = (psnr(vol, wdrcodec.decode(both[p]), data_range="ref") for p in (False, True))
        assert chosen == (pk > dy), (name, dy, pk)
    elif "lossless" in target:
        assert len(auto) <= min(len(b) for b in both.values()) * 1.005


def test_auto_packet_and_packet_are_refused():
    with pytest.raises(WdrError, match="--auto-packet and --packet"):
        wdrcodec.encode(np.zeros((8, 8, 8), np.uint16), bpv=1.0, auto_packet=True, packet=True)
