"""Fuzzing the decoder (issue 12): every corrupted or truncated input gives a ``WdrError`` or a
valid decode, never another exception, a crash or a hang.

The corpus covers both coders (``wdr``, ``ctx``), lossless and lossy streams, a 3D MCPD file
whose grouping mixes 3D and 2D slices, a 4D series, a float file (quantisation fields), a file
with an affine and a metadata section, and format 3: 4D series coded as one stream per volume
(stream table) and a file with a PyWavelets wavelet (wavelet name). Each test item applies one kind of mutation, seeded, a
dozen times:

* ``flip``: raw byte changes anywhere (the CRCs catch them, except in the unverifiable tail);
* ``forge``: payload byte changes with every CRC recomputed (what the range decoder must bound);
* ``cut``: truncation anywhere, decoded with and without ``trust_tail``;
* ``cut-garbage``: truncation, then the unverifiable tail overwritten, decoded with
  ``trust_tail=True``;
* ``field``: one field of the fixed header set to an edge or random value, CRCs recomputed;
* ``flags``: flag bits toggled (lossless, packet, ctx, metadata, ...), CRCs recomputed;
* ``varheader``: bytes of the variable header part (affine, grouping, metadata, tables) changed,
  CRCs recomputed;
* ``splice``: this header over another file's payload (other coder or mode), CRCs recomputed.

"Valid decode": an ndarray of the header's shape and dtype within the decoder limits. Each
decode must finish in ``PER_DECODE_S``; each test item also has a pytest-timeout (thread method:
a hang inside a numba kernel, where a signal cannot interrupt, still ends the run with a stack
dump instead of hanging it).
"""

from __future__ import annotations

import re
import struct
import time
import warnings
import zlib

import numpy as np
import pytest

import wdrcodec
from wdrcodec import WdrError
from wdrcodec.config import DecodeConfig
from wdrcodec.container import _FIXED, FIXED_SIZE

PER_DECODE_S = 5.0  # measured: < 0.1 s for the files, up to ~1 s for forged shapes (loaded machine)
ITEM_TIMEOUT_S = 60
N_MUTATIONS = 12
LIMITS = DecodeConfig(max_voxels=1 << 18)  # forged shapes stay small (the corpus: <= 2**17)
KINDS = ["flip", "forge", "cut", "cut-garbage", "field", "flags", "varheader", "splice"]


def _fixed_fields() -> list[tuple[int, str]]:
    """``(byte offset, struct code)`` of every scalar of the fixed header (magic excluded)."""
    fmt = _FIXED.format.lstrip("<")
    out, pos = [], 0
    for count, code in re.findall(r"(\d*)([a-zA-Z])", fmt):
        n = int(count or 1)
        if code == "s":
            pos += n
            continue
        size = struct.calcsize("<" + code)
        out += [(pos + k * size, code) for k in range(n)]
        pos += n * size
    assert pos == FIXED_SIZE
    return out


FIELDS = _fixed_fields()


def fix_checksums(blob: bytes, ref: wdrcodec.container.Header) -> bytes:
    """Recompute the payload CRC table and the header CRC at ``ref``'s positions (a forger who
    keeps the header length)."""
    hlen, nb, bs = ref.header_len, len(ref.block_crcs), ref.block_size
    if len(blob) < hlen:
        return blob
    body = bytearray(blob[: hlen - 4])
    payload = blob[hlen:]
    crcs = [zlib.crc32(payload[i * bs : (i + 1) * bs]) & 0xFFFFFFFF for i in range(nb)]
    table = hlen - 4 - 4 * nb
    body[table : table + 4 * nb] = struct.pack(f"<{nb}I", *crcs)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)) & 0xFFFFFFFF) + payload


def _edge_value(rng: np.random.Generator, code: str, old):
    if code in "dfe":
        pool = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e308, -1.0, 1e-300, old * 2, old + 1]
        return float(pool[rng.integers(len(pool))]) if rng.random() < 0.8 else rng.normal() * 1e6
    bits = 8 * struct.calcsize("<" + code)
    signed = code.islower()
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    pool = [lo, hi, 0, 1, hi - 1, old + 1, old - 1, old * 2, 255, 1 << 20]
    raw = int.from_bytes(rng.bytes(bits // 8), "little") + lo  # uniform over the type
    v = int(pool[rng.integers(len(pool))]) if rng.random() < 0.8 else raw
    return min(max(v, lo), hi)


def _mutate(kind: str, blob: bytes, other: bytes, h, rng: np.random.Generator):
    """One mutated file and whether to trust the tail."""
    n, hlen = len(blob), h.header_len
    if kind == "flip":
        bad = bytearray(blob)
        for _ in range(rng.integers(1, 5)):
            bad[rng.integers(n)] = rng.integers(256)
        return bytes(bad), bool(rng.integers(2))
    if kind == "forge":
        bad = bytearray(blob)
        for _ in range(rng.integers(1, 24)):
            bad[rng.integers(hlen, n)] = rng.integers(256)
        return fix_checksums(bytes(bad), h), False
    if kind == "cut":
        return blob[: rng.integers(0, n)], bool(rng.integers(2))
    if kind == "cut-garbage":
        cut = int(rng.integers(hlen + 1, n))
        complete = hlen + (cut - hlen) // h.block_size * h.block_size
        bad = bytearray(blob[:cut])
        tail = cut - complete
        bad[complete:] = rng.integers(0, 256, size=tail, dtype=np.uint8).tobytes()
        return bytes(bad), True
    if kind == "field":
        off, code = FIELDS[rng.integers(len(FIELDS))]
        (old,) = struct.unpack_from("<" + code, blob, 8 + off)
        bad = bytearray(blob)
        struct.pack_into("<" + code, bad, 8 + off, _edge_value(rng, code, old))
        return fix_checksums(bytes(bad), h), bool(rng.integers(2))
    if kind == "flags":
        (flags,) = struct.unpack_from("<H", blob, 10)
        for _ in range(rng.integers(1, 3)):
            flags ^= 1 << int(rng.integers(0, 10))
        bad = bytearray(blob)
        struct.pack_into("<H", bad, 10, flags)
        return fix_checksums(bytes(bad), h), False
    if kind == "varheader":
        table = hlen - 4 - 4 * len(h.block_crcs)
        if table <= FIXED_SIZE:  # nothing variable before the CRC table: forge the fixed part
            return _mutate("field", blob, other, h, rng)
        bad = bytearray(blob)
        for _ in range(rng.integers(1, 4)):
            bad[rng.integers(FIXED_SIZE, table)] = rng.integers(256)
        return fix_checksums(bytes(bad), h), False
    if kind == "splice":
        ho = wdrcodec.read_header(other)
        payload = other[ho.header_len :]
        start = int(rng.integers(0, max(1, len(payload) // 2)))
        payload = payload[start : start + h.payload_len]
        payload += bytes(h.payload_len - len(payload))  # same length: a complete file
        return fix_checksums(blob[:hlen] + payload, h), False
    raise AssertionError(kind)


def _decode_is_bounded_and_valid(data: bytes, trust_tail: bool) -> str:
    """Decode ``data``: a WdrError or a valid array, in bounded time. Returns the outcome."""
    t0 = time.perf_counter()
    try:
        res = wdrcodec.decode_full(data, limits=LIMITS, trust_tail=trust_tail)
    except WdrError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "Traceback" not in msg, msg
        outcome = "error"
    else:
        a, h = res.array, res.header
        assert isinstance(a, np.ndarray)
        assert a.shape == tuple(h.shape) and a.dtype == np.dtype(h.dtype)
        assert a.size <= LIMITS.max_voxels
        if a.dtype.kind == "f":
            assert np.isfinite(a).all(), "non-finite values in a float decode"
        outcome = "decoded"
    dt = time.perf_counter() - t0
    assert dt < PER_DECODE_S, f"decode took {dt:.2f} s"
    return outcome


@pytest.fixture(scope="module")
def corpus(dipy_volume) -> dict[str, bytes]:
    """Small real files of every kind the decoder reads (see the module docstring)."""
    from wdrcodec.mcpd import mcpd_scores

    vol = np.ascontiguousarray(dipy_volume[2:8, 40:88, 36:84])  # (Z, Y, X) uint16
    thr = float(np.median(mcpd_scores(vol, "std")))  # half of the slices 3D, half 2D
    series = np.stack([vol[:3], vol[3:]]).astype(np.int16) - 300  # (T, Z, Y, X) int16
    rng = np.random.default_rng(5)
    floats = (vol[:4, :32, :32].astype(np.float32) * 0.37 + rng.normal(0, 1, (4, 32, 32))).astype(
        np.float32
    )
    mcpd = {"mode": "mcpd", "mcpd_threshold": thr}
    four = {"slice_axis": 1, "time_axis": 0}
    out: dict[str, bytes] = {}
    for coder in ("wdr", "ctx"):
        out[f"{coder}-3d-mcpd-lossless"] = wdrcodec.encode(vol, lossless=True, coder=coder, **mcpd)
        out[f"{coder}-3d-mcpd-2bpv"] = wdrcodec.encode(vol, bpv=2.0, coder=coder, **mcpd)
        out[f"{coder}-4d-lossless"] = wdrcodec.encode(series, lossless=True, coder=coder, **four)
        out[f"{coder}-4d-1bpv"] = wdrcodec.encode(series, bpv=1.0, coder=coder, **four)
    out["wdr-float-3bpv"] = wdrcodec.encode(floats, bpv=3.0, packet=True)
    out["wdr-2d-meta-affine"] = wdrcodec.encode(
        vol[:3], bpv=1.5, mode="2d", affine=np.diag([2.0, 2.0, 4.0, 1.0]), metadata=b"m" * 40
    )
    # format 3: one stream per volume (volumes of >= 2**16 voxels), a PyWavelets wavelet
    big = np.stack([dipy_volume[:4], dipy_volume[4:8]])  # (2, 4, 128, 128)
    out["wdr-4d-streams-1bpv"] = wdrcodec.encode(big, bpv=1.0, **four)
    out["ctx-4d-streams-0.5bpv"] = wdrcodec.encode(big, bpv=0.5, coder="ctx", **four)
    out["wdr-3d-bior22-2bpv"] = wdrcodec.encode(vol, bpv=2.0, wavelet="bior2.2")
    for key in ("wdr-4d-streams-1bpv", "ctx-4d-streams-0.5bpv"):
        assert len(wdrcodec.read_header(out[key]).streams) == 2
    assert wdrcodec.read_header(out["wdr-3d-bior22-2bpv"]).wavelet == "bior2.2"
    grouping = wdrcodec.read_header(out["wdr-3d-mcpd-2bpv"]).grouping
    assert grouping.any() and not grouping.all()  # the MCPD files mix 3D and 2D slices
    for blob in out.values():  # load (or compile) the JIT kernels before anything is timed
        wdrcodec.decode_full(blob, limits=LIMITS, trust_tail=True)
        wdrcodec.decode_full(blob[: len(blob) - 7], limits=LIMITS, trust_tail=True)
    for blob in out.values():  # every pristine file decodes
        assert _decode_is_bounded_and_valid(blob, False) == "decoded"
    return out


NAMES = [
    *(f"{c}-{k}" for c in ("wdr", "ctx") for k in ("3d-mcpd-lossless", "3d-mcpd-2bpv")),
    *(f"{c}-{k}" for c in ("wdr", "ctx") for k in ("4d-lossless", "4d-1bpv")),
    "wdr-float-3bpv",
    "wdr-2d-meta-affine",
    "wdr-4d-streams-1bpv",
    "ctx-4d-streams-0.5bpv",
    "wdr-3d-bior22-2bpv",
]


@pytest.mark.timeout(ITEM_TIMEOUT_S, method="thread")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_mutated_files_error_or_decode(corpus, name, kind):
    blob = corpus[name]
    h = wdrcodec.read_header(blob)
    swapped = (
        name.replace("wdr-", "ctx-") if name.startswith("wdr-") else name.replace("ctx-", "wdr-")
    )
    other = corpus[swapped if swapped in corpus else "wdr-3d-mcpd-2bpv"]  # the splice partner
    seed = zlib.crc32(f"{name}/{kind}".encode())
    rng = np.random.default_rng(seed)
    outcomes = []
    for i in range(N_MUTATIONS):
        data, trust = _mutate(kind, blob, other, h, rng)
        try:
            outcomes.append(_decode_is_bounded_and_valid(data, trust))
        except AssertionError as exc:  # name the reproducer
            raise AssertionError(f"{name} {kind} seed {seed} case {i}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - anything else is the finding itself
            raise AssertionError(
                f"{name} {kind} seed {seed} case {i} (trust_tail={trust}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if kind == "flip":  # raw changes outside a cut file's tail are always caught
        assert outcomes.count("error") >= N_MUTATIONS - 2


def test_forged_huge_quant_step_is_refused_or_finite(corpus):
    """Found by this fuzzer: quant_step (offset 73) = 1e300 on a float file, CRCs recomputed."""
    blob = corpus["wdr-float-3bpv"]
    bad = bytearray(blob)
    struct.pack_into("<d", bad, 73, 1e300)
    forged = fix_checksums(bytes(bad), wdrcodec.read_header(blob))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # an overflow is not a clean outcome
        _decode_is_bounded_and_valid(forged, False)


def test_forged_huge_quant_step_is_refused_in_the_header(corpus):
    blob = corpus["wdr-float-3bpv"]
    bad = bytearray(blob)
    struct.pack_into("<d", bad, 73, 1e300)
    forged = fix_checksums(bytes(bad), wdrcodec.read_header(blob))
    with pytest.raises(wdrcodec.WdrError, match="overflows float"):
        wdrcodec.read_header(forged)
