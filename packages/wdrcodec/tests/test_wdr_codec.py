"""Codec API: lossless exactness, rate accuracy, quality on real MRI, embedding, options."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import wdrcodec
from medshared.errors import MedsharedError
from medshared.metrics import psnr
from wdrcodec import WdrError


def psnr_range(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR (dB) with the peak at the reference's data range ``max - min`` (medshared)."""
    return psnr(ref, test, data_range="ref")


def _extreme(dtype, shape, seed=0):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    a = rng.integers(info.min, int(info.max) + 1, size=shape, dtype=np.int64)
    flat = a.reshape(-1)
    flat[0], flat[-1] = info.min, info.max
    if flat.size > 3:
        flat[1], flat[2] = info.max, info.min
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize("shape", [(7, 13, 5), (1, 11, 17), (3, 2, 2), (13, 7), (2, 3, 5, 7)])
def test_lossless_exact_for_extremes_and_odd_shapes(dtype, shape):
    a = _extreme(dtype, shape)
    blob = wdrcodec.encode(a, lossless=True)
    out = wdrcodec.decode(blob)
    assert out.dtype == a.dtype and out.shape == a.shape
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("mode", ["3d", "2d", "mcpd"])
@pytest.mark.parametrize("packet", [False, True])
def test_lossless_exact_all_modes(smooth_volume, mode, packet):
    blob = wdrcodec.encode(
        smooth_volume, lossless=True, mode=mode, packet=packet, mcpd_threshold=0.3
    )
    np.testing.assert_array_equal(wdrcodec.decode(blob), smooth_volume)


def test_lossless_real_volume_ratio_and_embedding(dipy_volume):
    blob = wdrcodec.encode(dipy_volume, lossless=True)
    np.testing.assert_array_equal(wdrcodec.decode(blob), dipy_volume)
    # measured 2.374; OpenJPEG lossless J2K gives 2.29-2.30 on this volume
    assert dipy_volume.nbytes / len(blob) > 2.3
    # the lossless stream is embedded: a prefix is a lossy decode, better with more bytes
    p1 = psnr_range(dipy_volume, wdrcodec.decode(blob, bpv=1.0))
    p2 = psnr_range(dipy_volume, wdrcodec.decode(blob, bpv=3.0))
    assert 30 < p1 < p2 < np.inf


@pytest.mark.parametrize("bpv", [0.1, 0.25, 1.0, 2.0, 4.0])
def test_rate_accuracy(dipy_volume, bpv):
    blob = wdrcodec.encode(dipy_volume, bpv=bpv)
    budget = int(bpv * dipy_volume.size / 8)
    assert len(blob) <= budget
    assert len(blob) >= budget * 0.995


def test_quality_thresholds_on_real_volume(dipy_volume):
    """PSNR at the data range (4095) on dipy S0_10slices.

    Measured here: 3D 37.05 / 48.10 dB at 0.25 / 1 bpv, 2D 46.96 dB at 1 bpv. The issue's
    anchors at 1 bpv are OpenJPEG J2K 47.2 dB and SPERR-3D 48.0 dB; the thresholds sit between
    the anchors and our measurement, so a regression below J2K fails.
    """
    p = {}
    for mode in ("3d", "2d"):
        for bpv in (0.25, 1.0):
            p[mode, bpv] = psnr_range(
                dipy_volume, wdrcodec.decode(wdrcodec.encode(dipy_volume, bpv=bpv, mode=mode))
            )
    assert p["3d", 1.0] > 47.6
    assert p["3d", 0.25] > 36.5
    assert p["2d", 1.0] > 46.5
    assert p["3d", 1.0] > p["2d", 1.0] + 0.5  # inter-slice redundancy is used


def test_truncated_files_decode_with_increasing_quality(dipy_volume):
    """A cut file decodes its CRC-verified blocks (the unverifiable tail is left out and
    counted); with ``trust_tail`` every byte is used and quality rises with every cut."""
    blob = wdrcodec.encode(dipy_volume, bpv=2.0)
    h = wdrcodec.read_header(blob)
    values, trusted = [], []
    for frac in (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0):
        cut = blob[: h.header_len + int((len(blob) - h.header_len) * frac)]
        res = wdrcodec.decode_full(cut)
        assert res.truncated == (frac < 1.0)
        assert res.array.shape == dipy_volume.shape and res.array.dtype == dipy_volume.dtype
        n = len(cut) - h.header_len
        assert res.unverified_bytes == (n % h.block_size if frac < 1.0 else 0)
        assert res.bytes_used == h.header_len + n - res.unverified_bytes and not res.tail_used
        values.append(psnr_range(dipy_volume, res.array))
        full = wdrcodec.decode_full(cut, trust_tail=True)
        assert full.tail_used == (res.unverified_bytes > 0)
        trusted.append(psnr_range(dipy_volume, full.array))
    assert all(a <= b for a, b in zip(values, values[1:])), values
    assert values[-1] > values[0]
    assert all(a < b for a, b in zip(trusted, trusted[1:])), trusted


def test_garbage_in_the_unverified_tail_is_not_decoded(dipy_volume):
    """Issue 8: garbage in the last, incomplete block of a cut file used to decode at 6 dB."""
    blob = wdrcodec.encode(dipy_volume, bpv=2.0)
    h = wdrcodec.read_header(blob)
    cut = bytearray(blob[: h.header_len + h.block_size + 4000])
    rng = np.random.default_rng(1)
    cut[-4000:] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    res = wdrcodec.decode_full(bytes(cut))
    assert res.unverified_bytes == 4000 and not res.tail_used
    clean = wdrcodec.decode(blob[: h.header_len + h.block_size])
    np.testing.assert_array_equal(res.array, clean)
    assert psnr_range(dipy_volume, res.array) > 35


def test_prefix_decode_matches_direct_encode(dipy_volume):
    blob = wdrcodec.encode(dipy_volume, bpv=2.0)
    direct = wdrcodec.decode(wdrcodec.encode(dipy_volume, bpv=0.5))
    prefix = wdrcodec.decode(blob, bpv=0.5)
    assert abs(psnr_range(dipy_volume, direct) - psnr_range(dipy_volume, prefix)) < 0.05


def test_psnr_target(dipy_volume):
    blob = wdrcodec.encode(dipy_volume, psnr=45.0)
    got = psnr_range(dipy_volume, wdrcodec.decode(blob))
    assert 45.0 <= got < 46.0
    assert len(blob) * 8 / dipy_volume.size < 1.0  # 48 dB needs 1 bpv, so 45 dB needs less


def test_float_input_quantised_with_stated_step(smooth_volume):
    f = smooth_volume.astype(np.float32) * np.float32(0.37) - 100.0
    res = wdrcodec.encode_full(f, lossless=True)
    h = wdrcodec.read_header(res.data)
    assert h.dtype == "float32" and not res.exact
    lo, hi = np.percentile(f.astype(np.float64), [1.0, 99.0])
    assert h.quant_step == pytest.approx((hi - lo) / 65535, rel=1e-6) == res.float_step
    out = wdrcodec.decode(res.data)
    assert out.dtype == np.float32
    err = np.abs(out.astype(np.float64) - f).max()
    assert err <= h.quant_step * 0.5 + 1e-4
    assert res.float_max_error == pytest.approx(err, abs=1e-4)


def test_float_outlier_never_erases_the_data():
    """Issue 8: one 3e38 outlier made the step (max-min)/65535 and wiped every normal value.
    The step now comes from the robust range; a span that needs more than 2**30 steps of it
    is refused, naming the way out."""
    rng = np.random.default_rng(3)
    f = rng.normal(100.0, 10.0, (4, 16, 16)).astype(np.float32)
    f[0, 0, 0] = 3e38
    with pytest.raises(WdrError, match=r"outlier.*--float-step"):
        wdrcodec.encode(f, lossless=True, name="x.nii.gz")
    g = f.copy()
    g[0, 0, 0] = 5000.0  # a milder outlier: kept, and the rest keeps its precision
    res = wdrcodec.encode_full(g, lossless=True)
    out = wdrcodec.decode(res.data).astype(np.float64)
    assert np.abs(out - g).max() == pytest.approx(res.float_max_error, abs=1e-3)
    assert res.float_max_error < 0.01 and not res.exact
    with pytest.raises(WdrError, match="NaN"):
        wdrcodec.encode(np.full((2, 8, 8), np.nan), bpv=1.0)


def test_4d_and_nifti_axes_round_trip(smooth_volume):
    a4 = np.stack([smooth_volume, smooth_volume[::-1]])  # (T, Z, Y, X)
    blob = wdrcodec.encode(a4, lossless=True, mode="mcpd")
    np.testing.assert_array_equal(wdrcodec.decode(blob), a4)
    assert wdrcodec.read_header(blob).grouping.shape == (2, smooth_volume.shape[0])
    xyz = np.ascontiguousarray(smooth_volume.transpose(2, 1, 0))
    blob = wdrcodec.encode(xyz, bpv=2.0, slice_axis=2, spacing=(0.5, 0.6, 2.0))
    h = wdrcodec.read_header(blob)
    z, y, x = smooth_volume.shape
    assert h.internal_shape == (1, z, x, y) and h.spacing == (0.5, 0.6, 2.0)
    assert h.slice_axis == 2 and h.axes_xyz and h.order == (2, 0, 1)
    out = wdrcodec.decode(blob)
    assert out.shape == xyz.shape and psnr_range(xyz, out) > 40
    # a 4D NIfTI-ordered series (X, Y, Z, T): slices along 2, volumes along 3
    xyzt = np.ascontiguousarray(a4.transpose(3, 2, 1, 0))
    blob = wdrcodec.encode(xyzt, lossless=True, slice_axis=2, time_axis=3)
    h = wdrcodec.read_header(blob)
    assert h.time_axis == 3 and h.grouping.shape == (2, z)
    np.testing.assert_array_equal(wdrcodec.decode(blob), xyzt)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"slice_axis": 3}, "slice_axis"),
        ({"time_axis": 0}, "time_axis"),
        ({"slice_axis": "z"}, "slice_axis"),
    ],
)
def test_bad_axes(smooth_volume, kwargs, match):
    with pytest.raises(WdrError, match=match):
        wdrcodec.encode(smooth_volume, bpv=1.0, **kwargs)


def test_config_object_and_keyword_overrides(smooth_volume):
    cfg = wdrcodec.EncodeConfig(bpv=1.0, mode="2d")
    a = wdrcodec.encode(smooth_volume, cfg)
    b = wdrcodec.encode(smooth_volume, bpv=1.0, mode="2d")
    assert a == b and wdrcodec.read_header(a).mode == "2d"
    assert wdrcodec.read_header(wdrcodec.encode(smooth_volume, cfg, mode="3d")).mode == "3d"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.bpv = 2.0  # type: ignore[misc]


def test_mcpd_grouping_in_header(smooth_volume):
    from wdrcodec.mcpd import mcpd_scores

    scores = mcpd_scores(smooth_volume, "std")
    thr = float(np.median(scores))
    blob = wdrcodec.encode(smooth_volume, bpv=1.0, mode="mcpd", mcpd_threshold=thr)
    h = wdrcodec.read_header(blob)
    np.testing.assert_array_equal(h.grouping[0], scores <= thr)
    assert 0 < h.grouping.sum() < smooth_volume.shape[0]
    assert h.mode == "mcpd" and h.mcpd_threshold == thr and h.mcpd_norm == "std"
    assert (
        wdrcodec.read_header(wdrcodec.encode(smooth_volume, bpv=1.0, mode="2d")).grouping.sum() == 0
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bpv": -1.0}, "bpv"),
        ({"bpv": 0.001}, "header"),
        ({}, "rate"),
        ({"bpv": 1.0, "psnr": 40.0}, "at most one"),
        ({"bpv": 1.0, "mode": "4d"}, "mode"),
        ({"bpv": 1.0, "levels": 99}, "levels"),
        ({"bpv": 1.0, "spacing": (1.0, 2.0)}, "spacing"),
        ({"bpv": 1.0, "mcpd_norm": "zz"}, "--mcpd-norm"),
        ({"bpv": 1.0, "mode": "mcpd", "mcpd_threshold": -1.0}, "--mcpd-threshold"),
        ({"bpv": 1.0, "float_step": 0.0}, "--float-step"),
        ({"bpv": float("nan")}, "--bpv"),
        ({"psnr": 40.0, "lossless": True}, "at most one"),
        ({"bpv": 1.0, "colour": 1}, "colour"),
    ],
)
def test_bad_arguments(smooth_volume, kwargs, match):
    with pytest.raises(WdrError, match=match) as exc:
        wdrcodec.encode(smooth_volume, **kwargs)
    assert isinstance(exc.value, MedsharedError)


@pytest.mark.parametrize(
    "array", [np.zeros(5, np.uint8), np.zeros((2, 2, 2), np.int32), np.zeros((0, 4, 4), np.uint8)]
)
def test_bad_arrays(array):
    with pytest.raises(WdrError):
        wdrcodec.encode(array, bpv=1.0)


def test_constant_volume():
    a = np.full((4, 24, 24), 1234, np.uint16)
    np.testing.assert_array_equal(wdrcodec.decode(wdrcodec.encode(a, bpv=1.0)), a)
    np.testing.assert_array_equal(wdrcodec.decode(wdrcodec.encode(a, lossless=True)), a)
