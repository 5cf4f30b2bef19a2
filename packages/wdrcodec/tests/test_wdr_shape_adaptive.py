"""The shape-adaptive mode (``--background``): SA wavelets, the object mask coder, the codec's
use of both, and corrupted masked files (WdrError or a valid decode)."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest

import wdrcodec
from wdrcodec import WdrError, mask, shape_adaptive, wavelets
from wdrcodec.config import DecodeConfig, EncodeConfig
from wdrcodec.container import FLAG_MASK, MASK_FIXED
from wdrcodec.decomposition import axis_levels, forward

LIMITS = DecodeConfig(max_voxels=1 << 18)


def _blob_mask(shape, seed=0, fill=0.45) -> np.ndarray:
    """A compact object: an ellipsoid with a bumpy surface and a hole, ``(Z, Y, X)`` bool."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    r = (z / 0.9) ** 2 + (y / 0.8) ** 2 + (x / 0.7) ** 2
    bump = 0.08 * np.sin(5 * x + rng.uniform(0, 6)) * np.cos(4 * y)
    m = r + bump < fill * 2
    m &= (z**2 + (y - 0.2) ** 2 + x**2) > 0.03  # an inner hole
    return m


@pytest.fixture(scope="module")
def masked() -> np.ndarray:
    """A masked int16 volume ``(12, 48, 40)``: smooth tissue with noise, exact zeros outside."""
    shape = (12, 48, 40)
    rng = np.random.default_rng(3)
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    tissue = 900 + 300 * np.sin(x / 4.0) * np.cos(y / 6.0) + 20 * z + rng.normal(0, 15, shape)
    return np.where(_blob_mask(shape), np.rint(tissue), 0).astype(np.int16)


# ----------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("packet", [False, True])
def test_full_mask_is_the_ordinary_transform(packet):
    rng = np.random.default_rng(0)
    x = rng.integers(-900, 900, (9, 20, 33)).astype(np.int64)
    lv = axis_levels(x.shape, 5)
    full = np.ones(x.shape, bool)
    c, cm = shape_adaptive.forward_sa(x, full, lv, True, packet)
    assert cm.all()
    np.testing.assert_array_equal(c, forward(x, lv, True, packet))
    f, _ = shape_adaptive.forward_sa(x.astype(float), full, lv, False, packet)
    np.testing.assert_allclose(f, forward(x.astype(float), lv, False, packet), atol=1e-9)


def test_even_segment_equals_the_transform_of_the_segment_alone():
    """Segment [4, 15) of a line of 20: its low/high coefficients are those of the 5/3 (and 9/7)
    of x[4:15] alone, at global positions 2..7 (low) and 10 + 2..6 (high)."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4000, 20).astype(np.int64)
    m = np.zeros(20, bool)
    m[4:15] = True
    c, cm = shape_adaptive.forward_sa(x[None, None], m[None, None], (0, 0, 1), True, False)
    ref = wavelets.fwd53(x[4:15])  # low (6) then high (5)
    np.testing.assert_array_equal(c[0, 0, 2:8], ref[:6])
    np.testing.assert_array_equal(c[0, 0, 12:17], ref[6:])
    assert cm[0, 0].sum() == 11 and (c[0, 0][~cm[0, 0]] == 0).all()
    xf = x.astype(float)
    f, _ = shape_adaptive.forward_sa(xf[None, None], m[None, None], (0, 0, 1), False, False)
    ref = wavelets.fwd97(xf[4:15])
    np.testing.assert_allclose(f[0, 0, 2:8], ref[:6], atol=1e-9)
    np.testing.assert_allclose(f[0, 0, 12:17], ref[6:], atol=1e-9)


def test_single_samples_take_their_band_gain():
    x = np.array([[[5, 0, 0, 7, 0, 0]]], dtype=np.int64)
    m = x != 0
    c, cm = shape_adaptive.forward_sa(x, m, (0, 0, 1), True, False)
    # index 0 (even) -> low[0] = 5; index 3 (odd) -> high[1] = 2 * 7 (JPEG 2000 Part 1)
    np.testing.assert_array_equal(c[0, 0], [5, 0, 0, 0, 14, 0])
    np.testing.assert_array_equal(cm[0, 0], [1, 0, 0, 0, 1, 0])
    f, _ = shape_adaptive.forward_sa(x.astype(float), m, (0, 0, 1), False, False)
    np.testing.assert_allclose(f[0, 0], np.array([5, 0, 0, 0, 7, 0]) * np.sqrt(2.0))


@pytest.mark.parametrize("packet", [False, True])
@pytest.mark.parametrize("density", [0.15, 0.6, 0.95])
def test_inverse_is_exact_on_random_masks(packet, density):
    rng = np.random.default_rng(int(density * 100))
    x = rng.integers(-3000, 3000, (11, 26, 19)).astype(np.int64)
    m = rng.random(x.shape) < density
    lv = axis_levels(x.shape, 5)
    c, cm = shape_adaptive.forward_sa(x, m, lv, True, packet)
    assert cm.sum() == m.sum() and (c[~cm] == 0).all()
    np.testing.assert_array_equal(cm, shape_adaptive.coefficient_mask(m, lv, packet))
    r = shape_adaptive.inverse_sa(c.copy(), m, lv, True, packet)
    np.testing.assert_array_equal(r[m], x[m])
    assert (r[~m] == 0).all()
    f, _ = shape_adaptive.forward_sa(x.astype(float), m, lv, False, packet)
    rf = shape_adaptive.inverse_sa(f.copy(), m, lv, False, packet)
    np.testing.assert_allclose(rf[m], x[m], atol=1e-8)


def test_threads_give_the_same_coefficients():
    from wdrcodec.parallel import Pool

    rng = np.random.default_rng(4)
    x = rng.integers(0, 999, (16, 64, 48)).astype(np.int64)
    m = _blob_mask(x.shape)
    lv = axis_levels(x.shape, 5)
    c1, _ = shape_adaptive.forward_sa(x, m, lv, True, False)
    with Pool(2) as pool:
        c2, _ = shape_adaptive.forward_sa(x, m, lv, True, False, pool)
        r2 = shape_adaptive.inverse_sa(c2.copy(), m, lv, True, False, pool)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(r2[m], x[m])


# ----------------------------------------------------------------------------- mask coder


def test_mask_round_trip_and_size():
    m = _blob_mask((12, 48, 40))[None]
    om = mask.encode_mask(m, 0)
    back = mask.decode_mask(om.data, m.shape, om.count, 0, "f.wdr")
    np.testing.assert_array_equal(back.mask, m)
    assert 8 * len(om.data) < 0.1 * m.size  # a compact object: well under 0.1 bit/voxel
    rng = np.random.default_rng(2)
    noise = rng.random((1, 6, 20, 20)) < 0.5  # incompressible: still exact
    onoise = mask.encode_mask(noise, 0)
    np.testing.assert_array_equal(mask.decode_mask(onoise.data, noise.shape, onoise.count, 0, "n").mask, noise)


def test_a_static_4d_mask_costs_a_few_bytes_per_volume():
    m3 = _blob_mask((8, 32, 32))
    one = mask.encode_mask(m3[None], 0)
    four = mask.encode_mask(np.stack([m3] * 4), 0)
    assert len(four.data) <= len(one.data) + 4
    moving = np.stack([m3, np.roll(m3, 1, axis=2)])
    om = mask.encode_mask(moving, 0)
    np.testing.assert_array_equal(mask.decode_mask(om.data, moving.shape, om.count, 0, "m").mask, moving)


def test_corrupt_mask_sections_are_refused():
    m = _blob_mask((8, 32, 32))[None]
    om = mask.encode_mask(m, 0)
    with pytest.raises(WdrError, match="f.wdr: corrupted header .*object mask"):
        mask.decode_mask(om.data, m.shape, om.count + 1, 0, "f.wdr")
    with pytest.raises(WdrError, match="object mask"):
        mask.decode_mask(om.data[: len(om.data) // 2], m.shape, om.count, 0, "f.wdr")


def test_auto_rule():
    vol = np.zeros((6, 30, 30), np.int64)
    vol[:, 5:25, 5:25] = 7
    assert mask.choose_mask(vol[None], "auto", "3d") is not None  # 56% background, compact
    assert mask.choose_mask(vol[None], "auto", "2d") is None
    assert mask.choose_mask(vol[None], "off", "3d") is None
    few = np.full((6, 30, 30), 7, np.int64)
    few[0, :5, :5] = 0  # 0.5% background: auto stays off, on uses it
    assert mask.choose_mask(few[None], "auto", "3d") is None
    assert mask.choose_mask(few[None], "on", "3d") is not None
    speckle = np.random.default_rng(0).integers(0, 2, (6, 30, 30))  # 50% background, no shape
    assert mask.choose_mask(speckle[None], "auto", "3d") is None
    assert mask.choose_mask(np.ones((1, 4, 8, 8), np.int64), "on", "3d") is None  # no background


# ----------------------------------------------------------------------------- codec


@pytest.mark.parametrize("coder", ["ctx", "wdr"])
def test_lossless_masked_volume_is_exact_and_smaller(masked, coder):
    on = wdrcodec.encode_full(masked, lossless=True, coder=coder)
    off = wdrcodec.encode(masked, lossless=True, coder=coder, background="off")
    h = on.header
    assert h.mask_data is not None and h.version == 3 and h.mask_background == 0
    assert h.mask_count == int((masked != 0).sum())
    np.testing.assert_array_equal(wdrcodec.decode(on.data), masked)
    assert len(on.data) < 0.93 * len(off)  # measured: 0.84-0.86


@pytest.mark.parametrize("coder", ["ctx", "wdr"])
def test_lossy_masked_exact_rate_prefixes_and_quality(masked, coder):
    from medshared.metrics import psnr

    peak = float(masked.max() - masked.min())
    full = wdrcodec.encode(masked, lossless=True, coder=coder)
    prev = -1.0
    for bpv in (0.5, 1.0, 2.0):
        b = wdrcodec.encode(masked, bpv=bpv, coder=coder, background="on")
        assert len(b) == int(bpv * masked.size / 8)
        assert wdrcodec.encode(masked, bpv=bpv, coder=coder) == wdrcodec.encode(
            masked, bpv=bpv, coder=coder, background="off"
        )  # auto: lossy files leave the mode off (its decode is slower)
        d = wdrcodec.decode(b)
        assert (d[masked == 0] == 0).all()  # the background is exact at any rate
        q = psnr(masked.astype(float), d.astype(float), data_range=peak)
        off = wdrcodec.decode(wdrcodec.encode(masked, bpv=bpv, coder=coder, background="off"))
        assert q > psnr(masked.astype(float), off.astype(float), data_range=peak) + 0.3
        p = psnr(masked.astype(float), wdrcodec.decode(full, bpv=bpv).astype(float), data_range=peak)
        assert p > prev  # prefixes of the lossless stream decode, better with more bytes
        prev = p


def test_no_background_gives_the_same_bytes_as_off(smooth_volume):
    for kw in ({"lossless": True, "coder": "ctx"}, {"bpv": 1.0}):
        auto = wdrcodec.encode(smooth_volume, **kw)
        assert auto == wdrcodec.encode(smooth_volume, background="off", **kw)
        assert wdrcodec.read_header(auto).mask_data is None


def test_4d_streams_and_float_and_axes(masked):
    series = np.stack([masked, np.roll(masked, 2, axis=2), masked, masked])  # (T, Z, Y, X)
    big = np.concatenate([np.concatenate([series] * 2, axis=2)] * 2, axis=3)  # 12x96x80 >= 2**16
    for arr in (series, big):
        e = wdrcodec.encode_full(arr, lossless=True, coder="ctx", slice_axis=1, time_axis=0)
        assert e.header.mask_data is not None
        assert (e.header.streams is not None) == (arr is big)
        np.testing.assert_array_equal(wdrcodec.decode(e.data), arr)
        b = wdrcodec.encode(arr, bpv=1.0, slice_axis=1, time_axis=0, background="on")
        assert len(b) == int(arr.size / 8) and (wdrcodec.decode(b)[arr == 0] == 0).all()
    xyz = np.ascontiguousarray(masked.transpose(2, 1, 0))  # NIfTI order
    np.testing.assert_array_equal(
        wdrcodec.decode(wdrcodec.encode(xyz, lossless=True, slice_axis=2)), xyz
    )
    fl = masked.astype(np.float32) * 0.5 - 3.0  # background = the minimum, -3.0
    e = wdrcodec.encode_full(fl, lossless=True)
    d = wdrcodec.decode(e.data)
    assert e.header.mask_data is not None and (d[masked == 0] == -3.0).all()
    assert np.abs(d - fl).max() <= e.float_max_error + 1e-4  # + float32 rounding


def test_psnr_target_with_a_mask(masked):
    from medshared.metrics import psnr

    b = wdrcodec.encode(masked, psnr=50.0, background="on")
    d = wdrcodec.decode(b)
    assert wdrcodec.read_header(b).mask_data is not None
    assert psnr(masked.astype(float), d.astype(float), data_range=float(masked.max())) >= 50.0


def test_config_refuses_on_with_other_modes():
    with pytest.raises(WdrError, match="--background on and --mode 2d"):
        EncodeConfig(bpv=1.0, mode="2d", background="on")
    with pytest.raises(WdrError, match="--background on and --wavelet"):
        EncodeConfig(bpv=1.0, wavelet="bior2.2", background="on")
    with pytest.raises(WdrError, match="--background: must be one of auto, off, on"):
        EncodeConfig(bpv=1.0, background="yes")


def test_mcpd_and_2d_ignore_auto(masked):
    for mode in ("2d", "mcpd"):
        b = wdrcodec.encode(masked, lossless=True, mode=mode)
        assert wdrcodec.read_header(b).mask_data is None
        np.testing.assert_array_equal(wdrcodec.decode(b), masked)


def test_example4d_lossless_ratio_above_jpegxl_figure():
    """nibabel example4d[0] (61% exact zeros): the ctx ratio was 4.782 without the mode, JPEG-XL
    effort 7 reaches 4.968 (README); with it 5.44 (measured)."""
    pytest.importorskip("nibabel")
    from wdrcodec.data import nibabel_example4d

    vol = nibabel_example4d().array
    b = wdrcodec.encode(vol, lossless=True, coder="ctx")
    assert vol.nbytes / len(b) > 5.3
    np.testing.assert_array_equal(wdrcodec.decode(b), vol)


# ----------------------------------------------------------------------------- corrupted files


def _fix(blob: bytes, h) -> bytes:
    """Recompute the payload CRCs and the header CRC (a forger keeping the header length)."""
    hlen, nb, bs = h.header_len, len(h.block_crcs), h.block_size
    body = bytearray(blob[: hlen - 4])
    payload = blob[hlen:]
    crcs = [zlib.crc32(payload[i * bs : (i + 1) * bs]) & 0xFFFFFFFF for i in range(nb)]
    table = hlen - 4 - 4 * nb
    body[table : table + 4 * nb] = struct.pack(f"<{nb}I", *crcs)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)) & 0xFFFFFFFF) + payload


def _outcome(data: bytes, trust: bool = False) -> str:
    t0 = time.perf_counter()
    try:
        res = wdrcodec.decode_full(data, limits=LIMITS, trust_tail=trust)
    except WdrError as exc:
        assert str(exc) and "\n" not in str(exc)
        out = "error"
    else:
        assert res.array.shape == tuple(res.header.shape)
        assert res.array.dtype == np.dtype(res.header.dtype)
        out = "decoded"
    assert time.perf_counter() - t0 < 5.0
    return out


@pytest.fixture(scope="module")
def masked_corpus(masked) -> dict[str, bytes]:
    four = np.stack([masked, masked[::-1]])
    out = {
        "ctx-lossless": wdrcodec.encode(masked, lossless=True, coder="ctx"),
        "wdr-1bpv": wdrcodec.encode(masked, bpv=1.0, background="on"),
        "ctx-4d-2bpv": wdrcodec.encode(
            four, bpv=2.0, coder="ctx", slice_axis=1, time_axis=0, background="on"
        ),
        "wdr-float-3bpv": wdrcodec.encode(
            masked.astype(np.float32) / 7, bpv=3.0, packet=True, background="on"
        ),
    }
    for blob in out.values():
        assert wdrcodec.read_header(blob).mask_data is not None
        assert _outcome(blob) == "decoded"
    return out


def _mask_section(h) -> tuple[int, int]:
    """Byte range of the mask section (fixed part + coded mask) inside the header."""
    end = h.header_len - 4 - 4 * len(h.block_crcs)
    return end - MASK_FIXED - len(h.mask_data), end


@pytest.mark.timeout(120, method="thread")
@pytest.mark.parametrize("name", ["ctx-lossless", "wdr-1bpv", "ctx-4d-2bpv", "wdr-float-3bpv"])
def test_forged_masked_files_error_or_decode(masked_corpus, name):
    blob = masked_corpus[name]
    h = wdrcodec.read_header(blob)
    start, end = _mask_section(h)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    outcomes = {"mask": [], "count": []}
    for _ in range(10):  # coded mask bytes changed, CRCs recomputed
        bad = bytearray(blob)
        for _ in range(rng.integers(1, 4)):
            bad[rng.integers(start + MASK_FIXED, end)] ^= 1 << int(rng.integers(8))
        outcomes["mask"].append(_outcome(_fix(bytes(bad), h)))
    for value in (0, 1, h.mask_count - 1, h.mask_count + 1, 2**63, 2**64 - 1):  # the count
        bad = bytearray(blob)
        struct.pack_into("<Q", bad, start + 12, value)
        outcomes["count"].append(_outcome(_fix(bytes(bad), h)))
    for value in (-(2**63), -1, h.vmax + 1, 2**63 - 1):  # the background value
        bad = bytearray(blob)
        struct.pack_into("<q", bad, start + 4, value)
        assert _outcome(_fix(bytes(bad), h)) == "error"
    for value in (0, len(h.mask_data) + 1, 2**32 - 1):  # the section length
        bad = bytearray(blob)
        struct.pack_into("<I", bad, start, value)
        assert _outcome(_fix(bytes(bad), h)) == "error"
    assert outcomes["count"].count("error") == len(outcomes["count"])
    assert outcomes["mask"].count("error") >= 7  # a changed mask changes its count (mostly)
    # the flag cleared (a file read as maskless) / set on a maskless file: never a crash
    (flags,) = struct.unpack_from("<H", blob, 10)
    bad = bytearray(blob)
    struct.pack_into("<H", bad, 10, flags & ~FLAG_MASK)
    assert _outcome(_fix(bytes(bad), h)) == "error"
    for cut in rng.integers(0, len(blob), 8):  # truncation anywhere (the mask is in the header)
        _outcome(blob[: int(cut)], bool(rng.integers(2)))
    for _ in range(8):  # payload forged: the decoder stays bounded
        bad = bytearray(blob)
        for _ in range(rng.integers(1, 16)):
            bad[rng.integers(h.header_len, len(blob))] = rng.integers(256)
        _outcome(_fix(bytes(bad), h))


def test_mask_flag_on_a_file_without_mask_is_refused(smooth_volume):
    blob = wdrcodec.encode(smooth_volume, bpv=1.0, coder="ctx")
    h = wdrcodec.read_header(blob)
    (flags,) = struct.unpack_from("<H", blob, 10)
    bad = bytearray(blob)
    struct.pack_into("<H", bad, 10, flags | FLAG_MASK)
    assert _outcome(_fix(bytes(bad), h)) == "error"
    struct.pack_into("<H", bad, 10, flags | 2 * FLAG_MASK)  # an unknown flag
    with pytest.raises(WdrError, match="unknown flags"):
        wdrcodec.decode(_fix(bytes(bad), h))


@pytest.mark.parametrize("lossless", [True, False])
def test_slab_kernels_equal_the_line_kernels(lossless):
    """Z and Y passes (slab kernels, per-sample segment rule) equal the X pass (line kernels,
    explicit segments) on the transposed volume."""
    rng = np.random.default_rng(9)
    x = rng.integers(-2000, 2000, (17, 13, 11)).astype(np.int64 if lossless else np.float64)
    m = rng.random(x.shape) < 0.55
    for axis, lv in ((0, (2, 0, 0)), (1, (0, 2, 0))):
        c, _ = shape_adaptive.forward_sa(x, m, lv, lossless, False)
        xt = np.ascontiguousarray(np.swapaxes(x, axis, 2))
        mt = np.ascontiguousarray(np.swapaxes(m, axis, 2))
        ct, _ = shape_adaptive.forward_sa(xt, mt, (lv[2], lv[1], lv[0]) if axis == 0 else (0, 0, 2), lossless, False)
        np.testing.assert_allclose(c, np.swapaxes(ct, axis, 2), rtol=0, atol=1e-9)


def test_thread_count_does_not_change_masked_files(masked):
    big = np.concatenate([masked] * 4, axis=1)  # 12 x 192 x 40: passes split over threads
    for kw in ({"lossless": True, "coder": "ctx"}, {"bpv": 1.0}):
        one = wdrcodec.encode(big, threads=1, **kw)
        assert one == wdrcodec.encode(big, threads=2, **kw)
        dec = wdrcodec.decode_full(one, limits=DecodeConfig(threads=2)).array
        np.testing.assert_array_equal(dec, wdrcodec.decode(one))


def test_auto_leaves_the_mode_off_when_the_mask_would_crowd_a_low_rate(masked):
    om = mask.choose_mask(masked.astype(np.int64)[None], "auto", "3d")
    low = 4 * 8 * len(om.data) / masked.size * 0.9  # the mask would be > 1/4 of the file
    b = wdrcodec.encode(masked, lossless=True, bpv=low)  # a lossy prefix of a lossless stream
    assert wdrcodec.read_header(b).mask_data is None and len(b) == int(low * masked.size / 8)
    hi = wdrcodec.encode(masked, lossless=True, bpv=low * 1.2)
    assert wdrcodec.read_header(hi).mask_data is not None
    with pytest.raises(WdrError, match="header bytes"):  # forced on: the mask does not fit
        wdrcodec.encode(masked, bpv=0.9 * 8 * len(om.data) / masked.size, background="on")


# ----------------------------------------------------------------------------- old files
# Files written by wdrcodec before the shape-adaptive mode (commit 2305c13), zlib + base64, of
# the masked volume below: they decode exactly as before and the encoder with the mode off
# writes them again byte for byte (the context coder's skip support changes nothing else).
OLD_CTX_LOSSLESS = (
    "eNpljXk0FI4exWdp7BpZsgyDSEJ2xvZjLFnL2McajRjGViaFsTR+1uglW9nJYLIlyi4K2XfZd7JFyjLG/nq/9855"
    "73fe55x77vfeP+43Bq1jxszAwwAGaAKyAADAPC3gL8AXABAGACMASPM7sP8W628BAf8FeOF/QvxD5L+PnxqAvzGv"
    "8ff+//1fmzT/efzXPhB0foLtCKibcNiWAqKLOmoqQnwxywxsrmcRpnF3PO2LEpL0Rcx1p8ezr6K4rxm7itIMS1yS"
    "Xa0vsi2UvSmWWjTxqFCZaI9EgvmVopO3e9jHcsiGszoUz8ZDRPjJZ/27Pujd65mKs8mFieJ7C9Vzj0kbMmwy+PdQ"
    "vGJsDsWXr1qCV0sL6lVyRtwloJ5lvvuqLUBogk9xW4M95a/N/IS+xvkrGaaHW2lxPZUOQIacP5cDKChib0oB8gjp"
    "fRn3Gxq59CO8N+XR7mG4kWb+/sPDDdR4vZHI4yb5G+dNz8pO3o36DRlZdsnEQSryedsDlvY9ocdwax7hT8lvjj3X"
    "SV9yXAJRPI65aMRuqAOH5ZHJZwR9n3Gt39yt5joy0T9aPXIPkDUj4180C5iX8+bKrbLIJ2x1N277rF3Jdk0qBvJ2"
    "n09NJ9Hb8c2RhGdLCefmgvKGh2cVdPQMgcy5tvEzrN0ryLWH6rCF77YQPiGlsntzbpv9Y8rzMF2dUEz7fGZLc6zc"
    "hgkuMNGwXCFJBd5fHc3sexxFmZkHljryKuMMw9RMFBn3HSAkkjlyYqftu5BT5ogZMDhkVr/3vlL89+H7zazpfyJu"
    "vWeOWzwSdLfeYcsQYIKhU/pg9nfv++LDxIG06UpA+48F/ZL8vNgzy1/kc00GLmJgpreNgdMe/yDlHK4V/ql41o/Y"
    "w11u1bg/FYg9tWZzoo2YRIQiNPBwQkqp5rHUvLTvgUwpPS8FU+hGFYfoikR6q4FEdLPkiFvvHcjO0ZpbglYKxBku"
    "gL2omXyoZYRxhO+NHRNPYYNhx8sGF4YQzUmWUb+cD6Lq8e1ai2pwur4YngK5GG2hTdCihqBwChLaOefy3LkohokE"
    "SEGKzdovGppmvDT0aCWPpqIeFJORg94WNXT8ZZlhP4IbllLc0uwegy5CO6f19O2rsA4/u7aPzlz2FgndVUNPKGEa"
    "3VPSXq7HYNdXjXIK8WQVks0W/NEwajrZhl6sUKIKTnJNu7M+vAGJYX+VQyXo36x/yllfcEM4UQAHpf9cOCzVY+xr"
    "0tmbMJpQLPiw1Iw6hvjyhOW0fZsxLrJ/gLpLhRpp32YQNqvhr5lj4ZZxdpwPOD9toeB9HYC6sLeYOSmYzQ7paIms"
    "kSfJOXsMcRaNpDkvAeoyu5LrHmKd5B4IS05zL5TBxejuqw7DtblG2lpLC1fImQe0kpiotpH3TafVB1b3pJkhEgzP"
    "9XAdsuOkAPPE1vgkEFLutffHiW2P0Lq+jlRoTENqgwJFCWTRYjgHSfXq+bJ/kOi+wkjHZ84dCcxBugswTJQnZ0Au"
    "nptkRSytHOK0ZD9WSCiPlsEFricOBg7FWyY5PVXM0usKKD98df28kTkbz9lOu+zG1hhuzhle8o3gueLhbxdlz/gk"
    "k/0STdZs5yRp9QiJjXRAMe/zP1AX5JJXOTwDbWS74umMeo92T2NPBFvzSggBHgdLn5bLVGo7KvqEb4gNgii1sIFw"
    "HbzP5CGKweXFiyRdO5RZJl5G4g9zDq+aKCKAjkXOBieAMZCfLFilnoyatazLe89b/wxSxeW55Mz5Xf6Wb29aaaYL"
    "LSH0GzvLpLOtOKc2MvHWiVPLWe1SuR4sYaZDape31d98qqyEEesgCvj1u9MyIB8oIuauU7m2yNxZbm7V6gj0I4am"
    "2NXPR8rma1dWkL3Y67RIrZD48qhocO8sOg9EiyKQE1K+xlaHTZWlpWdU8HxS78PANEYc6DZv7zZfw75QpXOxSiSS"
    "qxUgfFwO2hzRSS/f5OZCDV4wP0qUec7IXnzFUiNtQmBAte1eDj8pjiU2vT2klOsITBp9p+xREiXYeSBxyy24W0/8"
    "+jlf1g9z5TTJYRMdFg2DRrN97iHDeesp5XDs6uQ1I7WrWB/fNJZpsriHmyBmaSF2K1p4TIPoWLB8Wp7Qsv7c+5p2"
    "r44aXnqQ/ZZslfQam7xC70SPtS0cBgp+fKtrs6yPKjHOWj+oQeasCwre4odOIxbiLVRhQsbD4fTtQtR68MlI4gin"
    "dIviBwzNwq8/3Lls+xhwIrQrEjYHxpXwAkHnDW9VCqrgi0vAUvHO+tNBGyu9+J3lxII/if+wPa7cVLGIDbMzK6N7"
    "MUbuZ2atSAPrwyBmQFWbA07HFUEmhAf12QfCSgJeQbYedfwrynlx5eXW1GbN+1/3snmp3R21ocweTS2mGzOs7bkV"
    "E1F9y6kcOwU9L1m97vjT+SsKbL4riHwptAddPBHv81XP7lBUF04YlL9kOXWEQ/sl3G1G14oyRYq2pL/eq74ql57b"
    "enVE85GraI8t18RxrovRt13wbryAgRoFxjZp8lUZrUO56kgXpOfuDzjFTXv62Y07Y5lx5thXhHDUYqlRHk33GMLZ"
    "P6p+su4JB0mkvVofd2HMhvuOW2zynXwmFUZZtpETgxrS2gWDneLLbmh/GcTF05p8tj+4I2AScEwCh0W0dxepus5u"
    "OWrWG0K+jTfFDoCT8wvSw+kr37JylMi7Cd2rzytadZtka0m5GF+4xtpOXv/We2VwTq1a6tB17AOP5sUm9RrA20Bk"
    "LD9jEBiJpn8w1TYY+dFgudVieLBnKjd/XWbGMg/kl395tXto4ofkKFvtZPBb9KPwiQy8ihd1QHapo4PiWMudbYXI"
    "Tm4W1xlvWDJ42PCDJI9SdZkqMvWUeD0ZN36xba09oOOxUkU252nnwEjQQCPKq6CE55/VJvQJ"
)
OLD_WDR_1_5BPV = (
    "eNrrDHcJ4uWS4mJiYGCYB8TfGSCAmYWBVYBBkIWRDcgRAWIhIGZkQABGFgj9J7cr8HBHiQOE98GeAQU8sEcVx6RB"
    "ZrJBLQabz8j0/w/L/e5FZU02XhJl0S8mHzE8su7CibnJ000PLOiSKlOy+vOj83dh5frnr9/r77bauG2ZUKDS5cd/"
    "OJ9wyGv5xJVaJvGu9jpSK5b0n+Xm1F2GU8/cseD4w3hp/5mNX60uVqvenfRlw/+oC480/T1W/9rewTvt6NNff9cu"
    "V11/9d6LtL2ZcpvOhN3qmrSrgKVM+8+f6SLh/2b7/7ym+sZ+IQ8P1/Z96ckZE5ZUPLv1bLuKY2/D5BsZjf9eezJk"
    "bJ/IsCwo70lw56R/nZfe1B8/uD+xVCzsFYegnLA3H2fzmf3npM31kxce2G9VfWD1tpXbrbo4NQ99kOBsff9lxvG/"
    "IuIm07Jt5nxo8hKv4D/B9qsAAPUAmCs="
)


def _old_volume() -> np.ndarray:
    z, y, x = np.meshgrid(np.arange(6), np.arange(20), np.arange(18), indexing="ij")
    inside = ((y - 9.5) / 8) ** 2 + ((x - 8.5) / 7) ** 2 + ((z - 2.5) / 4) ** 2 < 1
    v = 600 + ((x * 7 + y * 13 + z * 29) % 97) * 3 + 10 * x
    return np.where(inside, v, 0).astype(np.int16)


def test_files_from_before_the_mode_decode_and_reencode_identically():
    import base64

    vol = _old_volume()
    old_ll = zlib.decompress(base64.b64decode(OLD_CTX_LOSSLESS))
    old_lossy = zlib.decompress(base64.b64decode(OLD_WDR_1_5BPV))
    np.testing.assert_array_equal(wdrcodec.decode(old_ll), vol)
    assert wdrcodec.encode(vol, lossless=True, coder="ctx", background="off") == old_ll
    assert wdrcodec.encode(vol, bpv=1.5, background="off") == old_lossy
    on = wdrcodec.encode(vol, lossless=True, coder="ctx", background="on")
    assert wdrcodec.read_header(on).mask_data is not None and on != old_ll
    np.testing.assert_array_equal(wdrcodec.decode(on), vol)
