"""WDR as a zarr/numcodecs chunk codec (issue 12)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from wdrcodec import WdrError
from wdrcodec.chunks import WdrChunkCodec


@pytest.fixture(scope="module")
def series(smooth_volume) -> np.ndarray:
    """A small 4D ``(X, Y, Z, T)`` series: the smooth volume drifting over 4 frames."""
    xyz = smooth_volume.transpose(2, 1, 0)
    return np.ascontiguousarray(np.stack([np.roll(xyz, t, axis=0) for t in range(4)], axis=-1))


def _chunked_round_trip(arr, chunks, codec):
    """What zarr does: encode every chunk into a key-value store, read them back."""
    store = {}
    grid = [range(0, n, c) for n, c in zip(arr.shape, chunks)]
    for origin in itertools.product(*grid):
        sl = tuple(slice(o, o + c) for o, c in zip(origin, chunks))
        store[origin] = codec.encode(np.ascontiguousarray(arr[sl]))
    out = np.empty_like(arr)
    for origin, blob in store.items():
        sl = tuple(slice(o, o + c) for o, c in zip(origin, chunks))
        out[sl] = codec.decode(blob)
    return out, store


def test_lossless_chunked_4d(series):
    codec = WdrChunkCodec(lossless=True)
    out, store = _chunked_round_trip(series, (36, 20, 8, 1), codec)
    np.testing.assert_array_equal(out, series)
    assert len(store) == 2 * 4
    assert sum(map(len, store.values())) < series.nbytes / 1.5


def test_fixed_rate_chunks(series):
    codec = WdrChunkCodec(bpv=2.0)
    chunk = np.ascontiguousarray(series[:, :, :, :2])
    blob = codec.encode(chunk)
    assert len(blob) == chunk.size * 2 // 8
    dec = codec.decode(blob)
    assert dec.shape == chunk.shape and dec.dtype == chunk.dtype
    err = np.abs(dec.astype(float) - chunk).mean()
    assert 0 < err < 0.02 * (float(chunk.max()) - float(chunk.min()))
    out = np.zeros(chunk.nbytes, dtype=np.uint8).view(chunk.dtype)  # a flat buffer, as zarr gives
    codec.decode(memoryview(blob), out=out)
    np.testing.assert_array_equal(out.reshape(chunk.shape), dec)
    with pytest.raises(WdrError, match="output buffer"):
        codec.decode(blob, out=np.zeros(3, dtype=np.uint16))


def test_config_round_trip_and_validation():
    codec = WdrChunkCodec(bpv=1.5, mode="2d", slice_axis=0)
    cfg = codec.get_config()
    assert cfg["id"] == "wdr" and cfg["bpv"] == 1.5
    assert WdrChunkCodec.from_config(cfg) == codec
    with pytest.raises(WdrError, match="--bpv"):
        WdrChunkCodec(bpv=-1)
    with pytest.raises(WdrError, match="--bpv"):
        WdrChunkCodec()


def test_byte_order_and_output_buffers(series):
    """A swapped byte order is refused (zarr's v2 path would read it back byte-swapped); an
    output buffer is filled whether it is flat bytes or a strided view of the chunk's shape."""
    codec = WdrChunkCodec(lossless=True)
    chunk = np.ascontiguousarray(series[:, :, :, 0])
    with pytest.raises(WdrError, match="byte order"):
        codec.encode(chunk.astype(">u2"))
    blob = codec.encode(chunk)
    flat = np.zeros(chunk.nbytes, dtype=np.uint8)
    codec.decode(blob, out=flat)
    np.testing.assert_array_equal(flat.view(chunk.dtype).reshape(chunk.shape), chunk)
    big = np.zeros((chunk.shape[0] * 2,) + chunk.shape[1:], dtype=chunk.dtype)
    codec.decode(blob, out=big[::2])  # not contiguous, same shape and dtype
    np.testing.assert_array_equal(big[::2], chunk)
    assert not big[1::2].any()
    with pytest.raises(WdrError, match="non-contiguous"):
        codec.decode(blob, out=np.zeros(chunk.nbytes * 2, dtype=np.uint8)[::2])
