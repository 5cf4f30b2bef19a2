"""``--wavelet``: PyWavelets biorthogonal wavelets for the lossy mode (issue 12)."""

from __future__ import annotations

import struct
import sys
import zlib

import numpy as np
import pytest

import wdrcodec
from medshared.errors import MissingExtraError
from medshared.metrics import psnr
from wdrcodec import biorthogonal
from wdrcodec.config import EncodeConfig
from wdrcodec.errors import WdrError
from wdrcodec.wavelets import fwd97

pytest.importorskip("pywt")


@pytest.fixture(scope="module")
def vol() -> np.ndarray:
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(np.arange(12), np.arange(40), np.arange(36), indexing="ij")
    v = 900 + 500 * np.sin(x / 5.0) * np.cos(y / 7.0) + 30 * z + rng.normal(0, 15, x.shape)
    return np.clip(v, 0, 4095).astype(np.uint16)


@pytest.mark.parametrize("name", biorthogonal.PYWT_WAVELETS)
def test_every_wavelet_reconstructs_every_length(name):
    rng = np.random.default_rng(1)
    for n in (2, 3, 4, 5, 8, 9, 17, 32, 33):
        x = rng.normal(size=(2, n, 3))
        c = biorthogonal.forward_axis(x, 1, name)
        assert c.shape == x.shape  # non-expansive: ceil(n/2) low + floor(n/2) high
        assert np.max(np.abs(biorthogonal.inverse_axis(c, 1, name) - x)) < 1e-9


def test_bior44_is_the_builtin_cdf97_filter_bank():
    """pywt's bior4.4 and the lifting CDF 9/7 are the same filters with the same symmetric
    extension: equal low bands, high bands equal up to sign (pywt's high-pass sign)."""
    rng = np.random.default_rng(2)
    for n in (16, 33, 64):
        x = np.cumsum(rng.normal(size=n))
        a, b = biorthogonal.forward_axis(x, 0, "bior4.4"), fwd97(x)
        ns = (n + 1) // 2
        assert np.max(np.abs(a[:ns] - b[:ns])) < 1e-9
        assert np.max(np.abs(a[ns:] + b[ns:])) < 1e-9


def _q(ref: np.ndarray, rec: np.ndarray) -> float:
    return psnr(ref.astype(float), rec.astype(float), data_range=float(np.ptp(ref)))


@pytest.mark.parametrize("name", ["bior4.4", "bior2.2", "bior1.3", "rbio6.8"])
def test_encode_decode_with_a_pywt_wavelet(vol, name):
    ref = _q(vol, wdrcodec.decode(wdrcodec.encode(vol, bpv=1.0)))
    blob = wdrcodec.encode(vol, bpv=1.0, wavelet=name)
    assert len(blob) == vol.size // 8  # exact rate, the wavelet name counted in the header
    h = wdrcodec.read_header(blob)
    assert h.wavelet == name and h.version == 3
    q = _q(vol, wdrcodec.decode(blob))
    if name == "bior4.4":
        assert abs(q - ref) < 0.05  # the same filter bank as the built-in lifting
    else:
        assert ref - 6.0 < q < ref + 1.0  # bior1.3 (Haar-like low-pass) is the worst
    low = _q(vol, wdrcodec.decode(blob, bpv=0.3))  # prefixes still decode
    assert q - 12.0 < low < q


def test_wavelet_series_and_threads(vol):
    series = np.stack([vol, vol[::-1]])
    big = np.tile(series, (1, 1, 2, 2))  # 12 x 80 x 72 per volume: one stream each
    blobs = [wdrcodec.encode(big, bpv=0.5, wavelet="bior2.2", threads=n) for n in (1, 2)]
    assert blobs[0] == blobs[1]
    h = wdrcodec.read_header(blobs[0])
    assert h.wavelet == "bior2.2" and h.streams is not None


def test_default_files_do_not_change(vol):
    h = wdrcodec.read_header(wdrcodec.encode(vol, bpv=1.0))
    assert h.wavelet is None and h.version == 2
    assert wdrcodec.encode(vol, bpv=1.0) == wdrcodec.encode(vol, bpv=1.0, wavelet="cdf97")


@pytest.mark.parametrize("bad", ["haar", "db4", "bior9.9", "", "BIOR4.4"])
def test_unknown_wavelet_is_refused(bad):
    with pytest.raises(WdrError, match="--wavelet"):
        EncodeConfig(bpv=1.0, wavelet=bad)


def test_wavelet_with_lossless_is_refused():
    with pytest.raises(WdrError, match="--wavelet bior4.4 and --lossless"):
        EncodeConfig(lossless=True, wavelet="bior4.4")


def test_cli_wavelet(tmp_path, vol, capsys):
    from wdrcodec.cli import main

    src, out, dec = tmp_path / "v.npy", tmp_path / "v.wdr", tmp_path / "d.npy"
    np.save(src, vol)
    assert main(["encode", str(src), str(out), "--bpv", "1", "--wavelet", "bior6.8"]) == 0
    assert main(["decode", str(out), str(dec)]) == 0
    assert _q(vol, np.load(dec)) > 35.0
    assert main(["info", str(out)]) == 0
    assert "bior6.8 (PyWavelets)" in capsys.readouterr().out
    assert main(["encode", str(src), str(out), "--bpv", "1", "--wavelet", "db2"]) == 2
    assert "--wavelet" in capsys.readouterr().err


def test_missing_pywavelets_names_the_extra(vol, monkeypatch):
    blob = wdrcodec.encode(vol, bpv=1.0, wavelet="bior2.2")
    biorthogonal._plan.cache_clear()
    monkeypatch.setitem(sys.modules, "pywt", None)
    with pytest.raises(MissingExtraError, match=r"pip install wdrcodec\[wavelets\]"):
        wdrcodec.decode(blob)
    with pytest.raises(MissingExtraError, match=r"wdrcodec\[wavelets\]"):
        wdrcodec.encode(vol, bpv=1.0, wavelet="bior2.2")
    biorthogonal._plan.cache_clear()


def test_forged_wavelet_name_is_a_wdr_error(vol):
    blob = wdrcodec.encode(vol, bpv=1.0, wavelet="bior4.4")
    i = blob.index(b"bior4.4")
    hlen = struct.unpack("<I", blob[12:16])[0]
    for new in (b"haar4.4", b"bior4\xff4"):
        head = bytearray(blob[: hlen - 4])
        head[i : i + 7] = new
        forged = bytes(head) + struct.pack("<I", zlib.crc32(bytes(head)) & 0xFFFFFFFF)
        with pytest.raises(WdrError, match="wavelet"):
            wdrcodec.decode(forged + blob[hlen:])
