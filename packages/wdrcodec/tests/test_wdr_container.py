"""The .wdr container: truncated vs corrupted, forged headers, and fuzzing real encoded files."""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wdrcodec
from medshared.metrics import psnr
from wdrcodec import WdrError
from wdrcodec.config import DecodeConfig
from wdrcodec.container import _FIXED, FIXED_SIZE

FIELDS = [
    "magic", "version", "flags", "header_len", "payload_len", "ndim", "dtype", "mode", "levels",
    "top", "nplanes", "frac_bits", "norm", "s0", "s1", "s2", "s3", "vmin", "vmax", "mean",
    "quant_step", "quant_offset", "mcpd_threshold", "sp0", "sp1", "sp2", "sp3", "n_vol",
    "n_slices", "block_size", "n_blocks", "o0", "o1", "o2", "o3",
]  # fmt: skip
FAST = settings(
    max_examples=40, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def fix_checksums(blob: bytes) -> bytes:
    """Recompute every payload block CRC and the header CRC (simulates a forger)."""
    vals = dict(zip(FIELDS, _FIXED.unpack(blob[:FIXED_SIZE])))
    hlen, nb, bs = vals["header_len"], vals["n_blocks"], vals["block_size"]
    payload = blob[hlen:]
    body = bytearray(blob[: hlen - 4])
    table = hlen - 4 - 4 * nb
    if FIXED_SIZE <= table and bs > 0:  # only a table that fits in the header can be rewritten
        crcs = [zlib.crc32(payload[i * bs : (i + 1) * bs]) for i in range(nb)]
        body[table : table + 4 * nb] = struct.pack(f"<{nb}I", *crcs)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))) + payload


def forge(blob: bytes, **changes) -> bytes:
    vals = dict(zip(FIELDS, _FIXED.unpack(blob[:FIXED_SIZE])))
    vals.update(changes)
    return fix_checksums(_FIXED.pack(*vals.values()) + blob[FIXED_SIZE:])


@pytest.fixture(scope="module")
def small_real(dipy_volume) -> np.ndarray:
    return np.ascontiguousarray(dipy_volume[3:7, 30:78, 30:78])


@pytest.fixture(scope="module")
def blob(small_real) -> bytes:
    b = wdrcodec.encode(small_real, bpv=2.0, mode="mcpd", mcpd_threshold=0.3)
    wdrcodec.decode(b)  # JIT-load the decoder before hypothesis starts timing examples
    return b


def test_header_fields_round_trip(small_real):
    aff = np.diag([2.0, 2.0, 5.0, 1.0])
    b = wdrcodec.encode(small_real, bpv=1.0, spacing=(5.0, 2.0, 2.0), affine=aff, packet=True)
    h = wdrcodec.read_header(b)
    assert h.shape == small_real.shape and h.dtype == "uint16" and not h.lossless
    assert h.spacing == (5.0, 2.0, 2.0) and h.packet and h.levels == 5
    np.testing.assert_array_equal(h.affine, aff)
    assert h.file_size == len(b)


def test_not_a_wdr_file():
    with pytest.raises(WdrError, match="not a .wdr"):
        wdrcodec.decode(b"PK\x03\x04 this is a zip")


@pytest.mark.parametrize("cut", [0, 3, 20, 100])
def test_cut_inside_header_is_reported_as_truncated(blob, cut):
    with pytest.raises(WdrError, match="truncated inside the header"):
        wdrcodec.decode(blob[:cut] if cut else blob[:1])


def test_cut_payload_decodes_and_says_truncated(blob, small_real):
    h = wdrcodec.read_header(blob)
    res = wdrcodec.decode_full(blob[: h.header_len + 100])
    assert res.truncated and not res.complete and res.array.shape == small_real.shape


def test_flipped_header_bit_is_corruption(blob):
    for pos in (9, 30, 60, 140):
        bad = bytearray(blob)
        bad[pos] ^= 0x10
        with pytest.raises(WdrError, match="corrupted header"):
            wdrcodec.decode(bytes(bad))


def test_flipped_payload_bit_is_corruption(blob):
    bad = bytearray(blob)
    bad[-5] ^= 0x01
    with pytest.raises(WdrError, match="corrupted payload"):
        wdrcodec.decode(bytes(bad))
    with pytest.raises(WdrError, match="unexpected bytes"):
        wdrcodec.decode(blob + b"\x00")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"s0": 2**31, "s1": 2**31}, "more than the decoder limit.*--max-voxels"),
        ({"s0": 0}, "shape"),
        ({"payload_len": 2**40}, "block table"),
        ({"header_len": 2**31}, "header length"),
        ({"nplanes": 200}, "bit-plane"),
        ({"version": 9}, "version"),
        ({"ndim": 7}, "out of range"),
        ({"mean": float("nan")}, "non-finite"),
        ({"o0": 1}, "axis order"),
        ({"o3": 1}, "axis order"),
    ],
)
def test_forged_fields_fail_fast(blob, changes, match):
    t = time.perf_counter()
    with pytest.raises(WdrError, match=match):
        wdrcodec.decode(forge(blob, **changes))
    assert time.perf_counter() - t < 1.0


@FAST
@given(data=st.data())
def test_fuzz_raw_mutations_are_detected(blob, small_real, data):
    """A changed byte is caught by a CRC unless it lies in the last, incomplete payload block
    of a cut file (a prefix cannot be checked past its last complete block)."""
    bad = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(bad) - 1))
        bad[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        bad = bad[: data.draw(st.integers(0, len(bad)))]
    try:
        out = wdrcodec.decode(bytes(bad))
    except WdrError:
        return
    assert out.shape == small_real.shape and out.dtype == small_real.dtype
    diff = [i for i in range(len(bad)) if bad[i] != blob[i]]
    if diff:
        h = wdrcodec.read_header(blob)
        complete = (len(bad) - h.header_len) // h.block_size * h.block_size + h.header_len
        assert len(bad) < len(blob) and min(diff) >= complete


@FAST
@given(data=st.data())
def test_fuzz_forged_payload_never_crashes(blob, small_real, data):
    """Payload garbage with valid checksums: the numba decoder returns or raises WdrError."""
    h = wdrcodec.read_header(blob)
    bad = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 16))):
        pos = data.draw(st.integers(h.header_len, len(bad) - 1))
        bad[pos] = data.draw(st.integers(0, 255))
    t = time.perf_counter()
    try:
        out = wdrcodec.decode(fix_checksums(bytes(bad)))
        assert out.shape == small_real.shape
    except WdrError:
        pass
    assert time.perf_counter() - t < 2.0


@FAST
@given(data=st.data())
def test_fuzz_forged_header_fields(blob, data):
    """Random header field values with valid checksums: WdrError or a bounded decode."""
    name = data.draw(st.sampled_from(FIELDS[1:]))
    fmt = _FIXED.format[1:]
    code = [
        c
        for c in fmt.replace("8s", "s")
        .replace("4I", "IIII")
        .replace("4d", "dddd")
        .replace("4B", "BBBB")
    ]
    kind = code[FIELDS.index(name)]
    if kind == "d":
        value = data.draw(st.floats(allow_nan=True, allow_infinity=True, width=64))
    else:
        bits = {"B": 8, "H": 16, "h": 16, "I": 32, "Q": 64, "q": 64}[kind]
        signed = kind in "hq"
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        value = data.draw(st.integers(lo, hi))
    forged = forge(blob, **{name: value})
    t = time.perf_counter()
    try:
        out = wdrcodec.decode(forged, limits=DecodeConfig(max_voxels=1 << 20))
        assert isinstance(out, np.ndarray) and out.size <= 1 << 20
    except WdrError:
        pass
    assert time.perf_counter() - t < 2.5


def test_header_needing_more_memory_than_available_is_refused(monkeypatch) -> None:
    """A decode whose estimate exceeds the available memory fails fast, naming --max-memory;
    --max-memory raises (or lowers) the bound deliberately."""
    import medshared.io._limits as limits
    import wdrcodec.memory as memory

    data = wdrcodec.encode(np.arange(8 * 32 * 32, dtype=np.uint16).reshape(8, 32, 32), bpv=2)
    assert wdrcodec.decode(data).shape == (8, 32, 32)
    need = memory.decode_memory(8 * 32 * 32, 2, wdrcodec.read_header(data).payload_len, False)
    monkeypatch.setattr(limits, "available_memory", lambda: need - 1)
    with pytest.raises(WdrError, match=r"decoding its 8x32x32 uint16 array needs.*--max-memory"):
        wdrcodec.decode(data)
    ok = DecodeConfig(max_memory=(need + 1) / 2**30)
    assert wdrcodec.decode(data, limits=ok).shape == (8, 32, 32)
    with pytest.raises(WdrError, match=r"more than the limit of.*larger --max-memory"):
        wdrcodec.decode(data, limits=DecodeConfig(max_memory=(need - 1) / 2**30))


def test_version_1_files_still_decode(small_real):
    """A format-1 file (no axis-order field; flag 4 = NIfTI order reversed) decodes."""
    from wdrcodec.container import _FIXED_V1, FLAG_AXES_XYZ

    xyz = np.ascontiguousarray(small_real.transpose(2, 1, 0))
    # a v2 file of the reversed array with slices first is the same coded data as a v1 xyz file
    v2 = wdrcodec.encode(small_real, bpv=2.0)
    vals = dict(zip(FIELDS, _FIXED.unpack(v2[:FIXED_SIZE])))
    for k in ("o0", "o1", "o2", "o3"):
        vals.pop(k)
    vals.update(version=1, flags=vals["flags"] | FLAG_AXES_XYZ, s0=xyz.shape[0], s2=xyz.shape[2])
    vals["header_len"] -= 4
    v1 = fix_checksums(_FIXED_V1.pack(*vals.values()) + v2[FIXED_SIZE:])
    h = wdrcodec.read_header(v1)
    assert h.version == 1 and h.order == (2, 1, 0) and h.axes_xyz
    np.testing.assert_array_equal(wdrcodec.decode(v1), wdrcodec.decode(v2).transpose(2, 1, 0))


def test_metadata_section_round_trip_and_forgeries(small_real):
    meta = bytes(range(256)) * 3
    b = wdrcodec.encode(small_real, bpv=2.0, metadata=meta)
    h = wdrcodec.read_header(b)
    assert h.meta == meta and len(b) == small_real.size * 2 // 8  # counted in the rate
    np.testing.assert_array_equal(wdrcodec.decode(b), wdrcodec.decode(b))
    at = FIXED_SIZE + (small_real.shape[0] + 7) // 8  # the u32 length after the grouping
    for length in (0, len(meta) + 1, 2**31):
        bad = bytearray(b)
        bad[at : at + 4] = struct.pack("<I", length)
        with pytest.raises(WdrError, match="corrupted header"):
            wdrcodec.decode(fix_checksums(bytes(bad)))
    from wdrcodec.dicom import META_KIND, parse_attributes

    assert parse_attributes(meta, "x") is None  # not DICOM attributes: ignored
    with pytest.raises(WdrError, match="corrupted DICOM attributes"):
        parse_attributes(META_KIND + b"not zlib", "x.wdr")


def test_context_coded_files_are_format_3_and_old_context_files_are_refused(small_real):
    """ctx files are written as version 3; a version-2 file with the ctx flag came from the first
    (incompatible) context model and must be refused, never decoded to wrong values."""
    blob = wdrcodec.encode(small_real, bpv=1.0, coder="ctx")
    assert wdrcodec.read_header(blob).version == 3
    rec = wdrcodec.decode(blob)
    assert rec.shape == small_real.shape
    rng = float(small_real.max()) - float(small_real.min())
    ref = wdrcodec.decode(wdrcodec.encode(small_real, bpv=1.0))  # the default coder, same rate
    # a real decode of this small crop, not garbage: as good as the wdr coder's (~29.7 dB)
    assert psnr(small_real, rec, data_range=rng) > psnr(small_real, ref, data_range=rng) - 0.5
    assert psnr(small_real, rec, data_range=rng) > 27.0
    old = forge(blob, version=2)
    with pytest.raises(WdrError, match="first context model"):
        wdrcodec.read_header(old)
    with pytest.raises(WdrError, match="first context model"):
        wdrcodec.decode(old)


def test_masked_file_memory_estimate_counts_the_shape_adaptive_arrays() -> None:
    """A shape-adaptive file's estimate includes SA_PER_VOXEL: refused just below it."""
    import wdrcodec.memory as memory

    vol = np.zeros((8, 32, 32), np.uint16)
    vol[2:6, 8:24, 8:24] = np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16) + 1
    data = wdrcodec.encode(vol, lossless=True)
    h = wdrcodec.read_header(data)
    assert h.mask_data is not None
    plain = memory.decode_memory(vol.size, 2, h.payload_len, True)
    need = memory.decode_memory(vol.size, 2, h.payload_len, True, masked=True)
    assert need - plain == int(memory.SA_PER_VOXEL * vol.size)
    # a bound enough for the plain estimate, not for the masked one: refused before any work
    with pytest.raises(WdrError, match="larger --max-memory"):
        wdrcodec.decode(data, limits=DecodeConfig(max_memory=(plain + 1024) / 2**30))
    ok = DecodeConfig(max_memory=(need + 1) / 2**30)
    np.testing.assert_array_equal(wdrcodec.decode(data, limits=ok), vol)
