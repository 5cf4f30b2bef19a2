"""The decoder's fused last pass (inverse 9/7 along Z + rint/clip/cast straight into the output,
:func:`wdrcodec.decomposition.inverse_to`) against the unfused path, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import wdrcodec
from wdrcodec import decomposition
from wdrcodec.config import DecodeConfig
from wdrcodec.container import split


def _volume(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    """A smooth volume with noise and a few saturated voxels (the clip matters)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    smooth = sum(np.sin(g / (3.0 + 2 * i)) for i, g in enumerate(grids))
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    lo, hi = (info.min, info.max) if info is not None else (-1000.0, 1000.0)
    mid, amp = (lo + hi) / 2.0, (hi - lo) * 0.3
    vol = mid + amp * smooth / len(shape) + rng.normal(0, amp * 0.05, shape)
    vol.flat[:: max(1, vol.size // 50)] = hi  # saturated voxels
    vol.flat[7 :: max(1, vol.size // 50)] = lo
    return np.clip(vol, lo, hi).astype(dtype)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bytes (floats: bit for bit)."""
    return np.array_equal(
        np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)
    )


def _decode_both(blob: bytes, threads: int, monkeypatch) -> tuple[np.ndarray, np.ndarray, int]:
    """(fused decode, unfused decode, fused kernel calls)."""
    calls = []
    kernel = decomposition.inv97_z_final

    def counted(*args):
        calls.append(1)
        kernel(*args)

    limits = DecodeConfig(threads=threads)
    with monkeypatch.context() as m:
        m.setattr(decomposition, "inv97_z_final", counted)
        fused = wdrcodec.decode(blob, limits=limits)
    with monkeypatch.context() as m:
        m.setattr(decomposition, "FUSE", False)
        m.setattr(decomposition, "inv97_z_final", counted)
        n = len(calls)
        plain = wdrcodec.decode(blob, limits=limits)
        assert len(calls) == n  # the switch forces the old path
    return fused, plain, len(calls)


CASES = {
    # name: (shape, dtype, encode options, fused path expected)
    "uint16 3D": ((16, 40, 48), "uint16", {}, True),
    "int16 3D": ((12, 32, 32), "int16", {}, True),
    "uint8 3D": ((8, 32, 48), "uint8", {}, True),
    "odd shape": ((13, 27, 35), "uint16", {}, True),
    "packet": ((16, 33, 30), "int16", {"packet": True}, True),
    "4D streams": ((64, 32, 32, 3), "uint16", {"slice_axis": 2, "time_axis": 3}, True),
    "4D one stream": ((12, 16, 16, 4), "int16", {"slice_axis": 2, "time_axis": 3}, False),
    "float32": ((12, 32, 32), "float32", {}, False),
    "2d mode": ((12, 32, 32), "uint16", {"mode": "2d"}, False),
}


@pytest.mark.parametrize("bpv", [0.2, 0.5, 1.5, 4.0])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_fused_decode_equals_the_unfused_path(case, bpv, threads, monkeypatch):
    shape, dtype, opts, expect_fused = CASES[case]
    vol = _volume(shape, dtype, seed=len(case) + int(bpv * 8))
    blob = wdrcodec.encode(vol, bpv=bpv, background="off", **opts)
    fused, plain, calls = _decode_both(blob, threads, monkeypatch)
    assert fused.dtype == plain.dtype == vol.dtype
    assert fused.shape == plain.shape == vol.shape
    assert _same(fused, plain)
    assert (calls > 0) == expect_fused
    # and a prefix of the file (a truncated decode: a third of the payload cut off) too
    short = blob[: len(blob) - len(split(blob).payload) // 3]
    cut = wdrcodec.decode(short, limits=DecodeConfig(threads=threads))
    with monkeypatch.context() as m:
        m.setattr(decomposition, "FUSE", False)
        ref = wdrcodec.decode(short, limits=DecodeConfig(threads=threads))
    assert _same(cut, ref)


def test_lossless_and_pywavelets_files_take_the_old_path(monkeypatch):
    vol = _volume((8, 16, 16), "uint16", seed=3)
    for opts in ({"lossless": True}, {"bpv": 1.0, "wavelet": "bior2.2"}):
        blob = wdrcodec.encode(vol, background="off", **opts)
        fused, plain, calls = _decode_both(blob, 1, monkeypatch)
        assert calls == 0
        assert np.array_equal(fused, plain)
        if opts.get("lossless"):
            assert np.array_equal(fused, vol)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16"])
def test_fused_kernel_equals_lift_then_finalize(dtype):
    """The kernel alone: random (partly all-zero) coefficients, a mean that puts values past
    both ends of the range and exact .5 values (round half to even)."""
    from wdrcodec import coder
    from wdrcodec.lifting import Z_GROUP, inv97_z_final, lift_region

    rng = np.random.default_rng(11)
    info = np.iinfo(dtype)
    shape = (9, 7, 13)
    c = rng.normal(0, (info.max - info.min) / 2.0, shape)
    c[:, :2] = 0.0  # all-zero slabs
    c[(shape[0] + 1) // 2 :, 4] = 0.0  # a zero high band
    c[1, 5, :6] = np.arange(6) + 0.5  # halves
    mean = (int(info.min) + int(info.max)) / 2.0 + 0.5
    ref = c.copy()
    lift_region(ref, 0, lossless=False, forward=False)
    want = np.empty(shape, dtype=dtype)
    coder.finalize_to(ref, mean, float(info.min), float(info.max), want)
    got = np.empty(shape, dtype=dtype)
    src = c.copy()
    scratch = np.full(shape[0] * shape[2] * Z_GROUP, np.nan)
    inv97_z_final(src, got, 0, 3, scratch, mean, float(info.min), float(info.max))
    inv97_z_final(src, got, 3, shape[1], scratch, mean, float(info.min), float(info.max))
    assert np.array_equal(got, want)
    assert np.array_equal(src, c)  # the coefficients are only read
    assert got.min() == info.min and got.max() == info.max
