"""medshared.io.png: 8/16-bit grayscale round trips, Pillow agreement, rejected inputs, errors."""

from __future__ import annotations

import numpy as np
import pytest

from medshared.errors import MedsharedError, MissingExtraError
from medshared.io import read_png, write_png

Image = pytest.importorskip("PIL.Image")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_roundtrip_bit_depth(tmp_path, dtype):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, np.iinfo(dtype).max, size=(31, 47), endpoint=True).astype(dtype)
    arr[0, 0], arr[-1, -1] = 0, np.iinfo(dtype).max
    f = tmp_path / "img.png"
    write_png(f, arr)
    back = read_png(f)
    assert back.dtype == dtype and back.shape == (31, 47)
    np.testing.assert_array_equal(back, arr)
    # the file really has that bit depth (PNG IHDR byte 24) and colour type 0 (grayscale)
    raw = f.read_bytes()
    assert raw[24] == 8 * np.dtype(dtype).itemsize and raw[25] == 0


def test_big_endian_input_and_pillow_written_files(tmp_path):
    arr = np.arange(12, dtype=">u2").reshape(3, 4) * 5000
    f = tmp_path / "be.png"
    write_png(f, arr)
    np.testing.assert_array_equal(read_png(f), arr.astype(np.uint16))
    # files written by Pillow itself: L, 1-bit
    l8 = tmp_path / "l.png"
    Image.fromarray(np.full((4, 5), 77, np.uint8)).save(l8)
    np.testing.assert_array_equal(read_png(l8), np.full((4, 5), 77, np.uint8))
    bits = tmp_path / "bits.png"
    Image.fromarray(np.eye(3, dtype=bool)).save(bits)
    np.testing.assert_array_equal(read_png(bits), np.eye(3, dtype=np.uint8) * 255)


def test_rejects_colour_files(tmp_path):
    f = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(f)
    with pytest.raises(MedsharedError, match=r"rgb\.png: not a grayscale image \(mode RGB\)"):
        read_png(f)


@pytest.mark.parametrize(
    ("arr", "msg"),
    [
        (np.zeros((4, 4, 3), np.uint8), "ndim=3"),
        (np.zeros((2, 4, 4), np.uint16), "ndim=3"),
        (np.zeros(5, np.uint8), "ndim=1"),
        (np.zeros((4, 4), np.float32), "dtype float32 not supported"),
        (np.zeros((4, 4), np.int16), "dtype int16 not supported"),
        (np.zeros((4, 4), bool), "dtype bool not supported"),
    ],
)
def test_write_rejects_bad_arrays(tmp_path, arr, msg):
    f = tmp_path / "x.png"
    with pytest.raises(MedsharedError, match=msg):
        write_png(f, arr)
    assert list(tmp_path.iterdir()) == []


def test_errors_missing_extension_corrupt(tmp_path):
    with pytest.raises(MedsharedError, match=r"a\.png: no such file"):
        read_png(tmp_path / "a.png")
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(MedsharedError, match=r"a\.jpg: wrong extension"):
        read_png(tmp_path / "a.jpg")
    with pytest.raises(MedsharedError, match="wrong extension"):
        write_png(tmp_path / "a.jpg", np.zeros((2, 2), np.uint8))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png" * 10)
    with pytest.raises(MedsharedError, match=r"junk\.png: cannot read"):
        read_png(junk)
    good = tmp_path / "good.png"
    write_png(good, np.random.default_rng(1).integers(0, 255, (64, 64)).astype(np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(MedsharedError, match=r"cut\.png: cannot read"):
        read_png(cut)


def test_failed_write_keeps_previous(tmp_path, monkeypatch):
    f = tmp_path / "keep.png"
    write_png(f, np.zeros((3, 3), np.uint8))
    before = f.read_bytes()

    def half_save(self, fp, format=None, **kw):
        with open(fp, "wb") as fh:
            fh.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", half_save)
    with pytest.raises(MedsharedError, match=r"keep\.png: cannot write \(disk full\)"):
        write_png(f, np.ones((3, 3), np.uint8))
    assert f.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_missing_extra(tmp_path, monkeypatch):
    import medshared.io.png as mod

    def fail(module, extra, package="medshared"):
        raise MissingExtraError(f'pip install "{package}[{extra}]"')

    monkeypatch.setattr(mod, "require", fail)
    with pytest.raises(MissingExtraError, match=r"medshared\[png\]"):
        write_png(tmp_path / "a.png", np.zeros((2, 2), np.uint8))


def test_header_claiming_a_huge_image_is_refused_before_decoding(tmp_path):
    import struct
    import time
    import tracemalloc
    import zlib

    f = tmp_path / "claim.png"
    write_png(f, np.zeros((4, 4), np.uint8))
    raw = bytearray(f.read_bytes())
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", 10_000, 10_000)  # 100 M pixels in a ~70-byte file
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    f.write_bytes(bytes(raw))
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(
        MedsharedError,
        match=r"claim\.png: truncated or corrupt: the header "
        r"declares 10000 x 10000 pixels",
    ):
        read_png(f)
    assert time.perf_counter() - t0 < 1.0 and tracemalloc.get_traced_memory()[1] < 20e6
    tracemalloc.stop()
    raw[16:24] = struct.pack(">II", 100_000, 100_000)  # beyond Pillow's bomb limit
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    f.write_bytes(bytes(raw))
    with pytest.raises(MedsharedError, match=r"claim\.png: the header declares an image too large"):
        read_png(f)
