"""Threads inside one file (issue 12): bit-identical output at any thread count, the per-volume
streams of a 4D series (format 3: rate, prefixes, quality against one stream), the pieces
(interleaving, budget sharing, slab-split lifting) and the options."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import wdrcodec
from medshared.metrics import psnr
from wdrcodec import codec, coder, parallel, streams
from wdrcodec.config import DecodeConfig, EncodeConfig, resolve_threads
from wdrcodec.container import _FIXED, FIXED_SIZE, FLAG_STREAMS
from wdrcodec.decomposition import forward, inverse
from wdrcodec.errors import WdrError


def _series(t: int = 3, z: int = 16, y: int = 64, x: int = 64, seed: int = 0) -> np.ndarray:
    """A ``(T, Z, Y, X)`` uint16 series: smooth anatomy, a per-volume contrast, Gaussian noise."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(np.arange(z), np.arange(y), np.arange(x), indexing="ij")
    base = 1200 + 700 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + 25 * zz
    vols = [base * (1.0 - 0.15 * i) + rng.normal(0, 20, base.shape) for i in range(t)]
    return np.clip(np.stack(vols), 0, 4095).astype(np.uint16)


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    return _series()


def _psnr(ref: np.ndarray, rec: np.ndarray) -> float:
    return psnr(ref.astype(np.float64), rec.astype(np.float64), data_range=4095.0)


# ----------------------------------------------------------------------------- bit-identical


@pytest.mark.parametrize(
    "options",
    [
        {"bpv": 1.0},
        {"bpv": 0.3, "coder": "ctx"},
        {"lossless": True},
        {"psnr": 44.0},
        {"bpv": 1.0, "mode": "mcpd", "mcpd_threshold": 0.05},
        {"bpv": 0.5, "mode": "2d"},
    ],
)
def test_series_bytes_and_decode_do_not_depend_on_threads(series, options):
    blobs = [wdrcodec.encode(series, threads=n, **options) for n in (1, 2, 3)]
    assert blobs[0] == blobs[1] == blobs[2]
    assert wdrcodec.read_header(blobs[0]).streams is not None
    recs = [wdrcodec.decode(blobs[0], limits=DecodeConfig(threads=n)) for n in (1, 2, 3)]
    assert np.array_equal(recs[0], recs[1]) and np.array_equal(recs[0], recs[2])
    if options.get("lossless"):
        assert np.array_equal(recs[0], series)


@pytest.mark.parametrize(
    "options", [{"bpv": 1.0}, {"lossless": True}, {"bpv": 2.0, "packet": True}]
)
def test_volume_bytes_and_decode_do_not_depend_on_threads(series, options):
    vol = series[0]  # one 3D block: the threads split every lifting pass into slabs
    blobs = [wdrcodec.encode(vol, threads=n, **options) for n in (1, 2)]
    assert blobs[0] == blobs[1]
    assert wdrcodec.read_header(blobs[0]).version == 2  # no version-3 section in a 3D file
    a = wdrcodec.decode(blobs[0], limits=DecodeConfig(threads=1))
    b = wdrcodec.decode(blobs[0], limits=DecodeConfig(threads=2))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("lossless", [False, True])
def test_slab_split_lifting_equals_serial_kernels(lossless):
    rng = np.random.default_rng(3)
    shape = (20, 70, 45)  # odd sizes, region sizes above parallel.MIN_SPLIT at the first level
    x = rng.integers(-3000, 3000, shape) if lossless else rng.normal(0, 100, shape)
    lv = (3, 4, 4)
    ref = forward(x, lv, lossless, False)
    with parallel.Pool(3) as pool:
        got = forward(x, lv, lossless, False, pool=pool)
        assert np.array_equal(got, ref)
        back = inverse(got, lv, lossless, False, pool=pool)
    assert np.array_equal(back, inverse(ref, lv, lossless, False))
    if lossless:
        assert np.array_equal(back, x)
    else:
        assert np.max(np.abs(back - x)) < 1e-9


def test_float_series_does_not_depend_on_threads(series):
    f = series.astype(np.float32) / 7.0
    blobs = [wdrcodec.encode(f, bpv=1.5, threads=n) for n in (1, 2)]
    assert blobs[0] == blobs[1]
    a = wdrcodec.decode(blobs[0], limits=DecodeConfig(threads=1))
    b = wdrcodec.decode(blobs[0], limits=DecodeConfig(threads=2))
    assert a.dtype == np.float32 and np.array_equal(a, b)


# ----------------------------------------------------------------------------- 4D streams


def test_series_streams_exact_rate_and_quality_against_one_stream(series, monkeypatch):
    nvox = series.size
    for bpv in (0.25, 1.0, 2.0):
        blob = wdrcodec.encode(series, bpv=bpv)
        h = wdrcodec.read_header(blob)
        assert h.version == 3 and len(h.streams) == series.shape[0]
        assert sum(h.streams) == h.payload_len
        assert len(blob) == int(np.floor(bpv * nvox / 8))  # the rate stays exact
        split = _psnr(series, wdrcodec.decode(blob))
        with monkeypatch.context() as m:  # the same series as one stream (format 2)
            m.setattr(codec, "MIN_STREAM_VOXELS", 1 << 40)
            one = wdrcodec.encode(series, bpv=bpv)
        assert wdrcodec.read_header(one).streams is None
        single = _psnr(series, wdrcodec.decode(one))
        # every volume stops at about the plane one stream would: no quality given away
        assert split > single - 0.15, (bpv, split, single)


def test_series_budget_follows_the_volumes_content():
    """A series whose first volume holds far more detail than the rest: the budget sharing
    gives it the larger share (equal shares would starve it)."""
    rng = np.random.default_rng(5)
    s = _series(t=3, seed=5).astype(np.int64)
    s[0] += rng.normal(0, 200, s[0].shape).astype(np.int64)
    s = np.clip(s, 0, 4095).astype(np.uint16)
    h = wdrcodec.read_header(wdrcodec.encode(s, bpv=1.0))
    assert h.streams[0] > 1.5 * max(h.streams[1:])


def test_series_prefixes_decode_and_improve(series):
    blob = wdrcodec.encode(series, lossless=True)
    h = wdrcodec.read_header(blob)
    last = -np.inf
    for frac in (0.05, 0.15, 0.4, 0.8):
        cut = h.header_len + int(frac * h.payload_len)
        res = wdrcodec.decode_full(blob[:cut], trust_tail=True)
        assert res.truncated and not res.complete
        q = _psnr(series, res.array)
        assert q > last
        last = q
    for bpv in (0.5, 1.0):  # a --bpv prefix of the lossless stream against a direct encode
        low = _psnr(series, wdrcodec.decode(blob, bpv=bpv))
        assert low > 30.0
    full = wdrcodec.decode_full(blob)
    assert full.complete and np.array_equal(full.array, series)


def test_series_axes_round_trip():
    s = _series(t=2)
    xyzt = s.transpose(3, 2, 1, 0)  # NIfTI order
    blob = wdrcodec.encode(xyzt, lossless=True, slice_axis=2, time_axis=3)
    assert wdrcodec.read_header(blob).streams is not None
    assert np.array_equal(wdrcodec.decode(blob), xyzt)


def test_small_series_stays_one_stream():
    s = _series(t=4, z=8, y=16, x=16)  # 2048 voxels per volume, under MIN_STREAM_VOXELS
    h = wdrcodec.read_header(wdrcodec.encode(s, bpv=1.0))
    assert h.streams is None and h.version == 2


def _forge(blob: bytes, edit) -> bytes:
    """Apply ``edit(bytearray header)`` and fix the header CRC."""
    hlen = struct.unpack("<I", blob[12:16])[0]
    head = bytearray(blob[: hlen - 4])
    edit(head)
    return bytes(head) + struct.pack("<I", zlib.crc32(bytes(head)) & 0xFFFFFFFF) + blob[hlen:]


def test_forged_stream_table_is_a_wdr_error(series):
    blob = wdrcodec.encode(series, bpv=0.5)
    h = wdrcodec.read_header(blob)
    # the stream table sits after the fixed part and the grouping bits (no affine, no meta)
    at = FIXED_SIZE + (h.grouping.size + 7) // 8

    def bump(head: bytearray) -> None:
        (v,) = struct.unpack("<I", head[at : at + 4])
        head[at : at + 4] = struct.pack("<I", v + 1)

    with pytest.raises(WdrError, match="stream lengths"):
        wdrcodec.decode(_forge(blob, bump))

    def drop_flag(head: bytearray) -> None:
        vals = list(_FIXED.unpack(bytes(head[:FIXED_SIZE])))
        vals[2] &= ~FLAG_STREAMS
        head[:FIXED_SIZE] = _FIXED.pack(*vals)

    with pytest.raises(WdrError, match="corrupted header"):
        wdrcodec.decode(_forge(blob, drop_flag))

    def old_version(head: bytearray) -> None:
        vals = list(_FIXED.unpack(bytes(head[:FIXED_SIZE])))
        vals[1] = 2
        head[:FIXED_SIZE] = _FIXED.pack(*vals)

    with pytest.raises(WdrError, match="version-3 flags"):
        wdrcodec.decode(_forge(blob, old_version))


# ----------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("lengths", [(0, 5, 9000), (4096, 4096, 1), (10000,), (7, 0)])
def test_interleave_every_prefix_holds_stream_prefixes(lengths):
    rng = np.random.default_rng(len(lengths))
    parts = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]
    payload = streams.interleave(parts)
    assert len(payload) == sum(lengths)
    assert streams.deinterleave(payload, lengths) == parts
    cuts = sorted(set(rng.integers(0, len(payload) + 1, 25).tolist()) | {0, len(payload)})
    for cut in cuts:
        got = streams.deinterleave(payload[:cut], lengths)
        assert sum(len(g) for g in got) == cut
        assert all(p.startswith(g) for p, g in zip(parts, got))


def test_interleave_balances_prefixes():
    lengths = (40000, 40000, 20000)
    parts = [bytes([i]) * n for i, n in enumerate(lengths)]
    got = streams.deinterleave(streams.interleave(parts)[:50000], lengths)
    fracs = [len(g) / n for g, n in zip(got, lengths)]
    assert max(fracs) - min(fracs) < 2 * streams.CHUNK / min(lengths)


def test_allocate_shares_the_budget_exactly():
    c = streams.plane_costs(streams.bit_lengths(np.arange(5000, dtype=np.int64) % 300), 8, 9)
    assert c.shape == (9,) and np.all(c > 0)
    for budget in (1, 777, 10_000, 10**7):
        shares = streams.allocate([c, c, c], budget)
        assert sum(shares) == budget and max(shares) - min(shares) <= 1
    double = streams.allocate([c, 2 * c], 3000)
    assert sum(double) == 3000 and 1.8 < double[1] / double[0] < 2.2


def test_resolve_threads_and_batch_threads():
    from wdrcodec.files import batch_threads

    cores = parallel.available_cores()
    assert resolve_threads(3) == 3
    assert resolve_threads(0) == cores
    assert resolve_threads(0, jobs=cores * 4) == 1
    assert batch_threads(0, jobs=2, n_inputs=1) == cores  # one file: all cores for it
    assert batch_threads(0, jobs=2, n_inputs=5) == max(1, cores // 2)
    assert batch_threads(4, jobs=2, n_inputs=5) == 4  # an explicit count is kept


def test_pool_runs_in_order_and_propagates_errors():
    with parallel.Pool(2) as pool:
        assert pool.map(lambda v: v * v, list(range(20))) == [v * v for v in range(20)]

        def boom(v: int) -> int:
            if v == 3:
                raise WdrError("task 3")
            return v

        with pytest.raises(WdrError, match="task 3"):
            pool.map(boom, list(range(6)))
    assert parallel.splits(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert parallel.splits(2, 5) == [(0, 1), (1, 2)]


@pytest.mark.parametrize("bad", [-1, 1.5, 10**6])
def test_threads_option_is_checked(bad):
    with pytest.raises(WdrError, match="--threads"):
        EncodeConfig(bpv=1.0, threads=bad)
    with pytest.raises(WdrError, match="--threads"):
        DecodeConfig(threads=bad)


def test_kernels_release_the_gil(series):
    """The coder runs GIL-free: another Python thread keeps running while a stream is coded
    (with the GIL held it could not run a single bytecode inside the call)."""
    import threading
    import time

    lay = codec._volume_layouts(series.shape, np.ones(series.shape[:2], bool), 5, False)[0]
    mag, neg = codec._coefficients(series[:1], lay, True, False, 0.0, parallel.SERIAL)
    mag, neg = np.tile(mag, 4), np.tile(neg, 4)  # long enough to see inside the call
    top = int(mag.max()).bit_length() - 1
    cls = np.zeros(mag.size, np.uint8)
    parallel.encode_stream(mag[:100], neg[:100], top, top + 1, None, cls[:100])  # compiled
    stamps: list[float] = []
    done = threading.Event()

    def counter() -> None:
        while not done.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.0002)

    th = threading.Thread(target=counter)
    th.start()
    time.sleep(0.01)
    t0 = time.perf_counter()
    parallel.encode_stream(mag, neg, top, top + 1, None, cls)
    t1 = time.perf_counter()
    done.set()
    th.join()
    assert t1 - t0 > 0.01
    inside = [t for t in stamps if t0 + 0.002 < t < t1 - 0.002]
    assert len(inside) >= 3, (t1 - t0, len(inside))
    assert parallel.K.wdr_encode.targetoptions.get("nogil") is True
    assert coder.wdr_decode_ws.targetoptions.get("nogil") is True


def test_cli_threads_give_the_same_files(tmp_path, series, capsys):
    from wdrcodec.cli import main

    src = tmp_path / "s.npy"
    np.save(src, series)
    outs = []
    for n in ("1", "2"):
        out = tmp_path / f"s{n}.wdr"
        assert main(["encode", str(src), str(out), "--bpv", "0.75", "--threads", n]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    decs = []
    for n in ("1", "2", "0"):
        dst = tmp_path / f"d{n}.npy"
        assert main(["decode", str(tmp_path / "s1.wdr"), str(dst), "--threads", n]) == 0
        decs.append(np.load(dst))
    assert all(np.array_equal(decs[0], d) for d in decs[1:])
    capsys.readouterr()
    assert main(["info", str(tmp_path / "s1.wdr"), "--json"]) == 0
    info = capsys.readouterr().out
    assert '"streams": 3' in info and '"format_version": 3' in info


def test_deinterleave_work_is_bounded_by_the_bytes_present():
    """A forged header may claim streams of 4 GiB each: only the chunks the file can hold are
    scheduled (no allocation proportional to the claimed lengths)."""
    lengths = (2**32 - 1,) * 4096
    got = streams.deinterleave(b"\x01" * 10000, lengths)
    assert sum(len(g) for g in got) == 10000 and len(got) == 4096
    stream, _off, _size = streams._schedule(np.array(lengths), 10000)
    assert stream.size <= 4096 * 3


def test_critical_path_accounting(series):
    """The bench's load-robust figure: with 2 threads the busiest thread carries about half of
    the series' tasks, with 1 thread all of them; accounting is off again afterwards."""
    one = parallel.critical_path(lambda: wdrcodec.encode(series, bpv=1.0, threads=1))
    two = parallel.critical_path(lambda: wdrcodec.encode(series, bpv=1.0, threads=2))
    assert one[2] == two[2]
    assert 0 < one[0] <= one[1] * 1.001 and 0 < two[0] < two[1]
    assert parallel._ACCOUNT is None


def test_pool_error_cancels_queued_tasks():
    import threading
    import time

    ran = []
    gate = threading.Event()

    def task(v: int) -> int:
        if v == 0:
            raise WdrError("first task fails")
        gate.wait(1.0)
        ran.append(v)
        return v

    with pytest.raises(WdrError, match="first task"):
        with parallel.Pool(2) as pool:
            try:
                pool.map(task, list(range(40)))
            finally:
                gate.set()
    time.sleep(0.05)
    assert len(ran) < 40  # queued tasks were cancelled, not all run


def test_decoder_work_arrays_live_only_while_a_pool_is_open():
    """Inside a pool each thread reuses one set of decoder work arrays (grown on demand); the
    calling thread's set is dropped when the pool closes, so nothing stays allocated."""
    assert parallel.decoder_workspace(10) is None  # no pool: the decoder allocates
    with parallel.Pool(1):
        a = parallel.decoder_workspace(100)
        assert a is not None and len(a) == 6 and all(w.shape[0] >= 100 for w in a)
        assert parallel.decoder_workspace(50) is a  # reused
        b = parallel.decoder_workspace(1000)
        assert b is not a and all(w.shape[0] >= 1000 for w in b)
        with parallel.Pool(1):  # a nested pool shares the set and leaves it in place
            assert parallel.decoder_workspace(10) is b
        assert parallel.decoder_workspace(10) is b
    assert parallel.decoder_workspace(10) is None
    with parallel.Pool(2) as pool:
        got = pool.map(lambda _: parallel.decoder_workspace(10) is not None, range(4))
    assert all(got) and parallel.decoder_workspace(10) is None


def test_decoder_output_is_reused_only_once_released():
    """A pool's output array comes back zero-filled, and only when no result (or view of one)
    still holds it; without a pool there is none."""

    def addr(a: np.ndarray) -> int:
        return a.__array_interface__["data"][0]

    assert parallel.decoder_output(10) is None
    with parallel.Pool(1):
        a = parallel.decoder_output(100)
        a[:] = 7.0
        b = parallel.decoder_output(100)  # a still alive: a different array
        assert not np.shares_memory(a, b) and not b.any()
        held = addr(b)
        b[3] = 1.0
        view = b.reshape(10, 10)
        del a, b
        c = parallel.decoder_output(100)
        assert addr(c) != held  # a view of the previous result is still alive
        del view, c
        d = parallel.decoder_output(60)
        assert not d.any() and d.shape == (60,) and d.dtype == np.float64
        e = parallel.decoder_output(60)
        assert not np.shares_memory(d, e)


def test_reused_work_arrays_decode_the_same(series):
    """Decodes through reused (dirty, longer) work arrays equal fresh-array decodes, at every
    prefix; decode_into refuses work arrays that are too short."""
    from wdrcodec.container import internal_shape, split
    from wdrcodec.layout import make_layout

    blob = wdrcodec.encode(series[0], bpv=1.0, background="off")
    sp = split(blob)
    h = sp.header
    lay = make_layout(internal_shape(h.shape, h.order), h.grouping, h.levels, h.packet)
    scale = 2.0**-h.frac_bits
    work = tuple(np.full(lay.n + 7, 123, dtype=w.dtype) for w in coder.workspace(1))
    fresh_full = coder.decode_into(sp.payload, h.top, h.nplanes, lay.classes, scale, lay.boxes)
    for cut in (len(sp.payload), len(sp.payload) // 3, 40):
        fresh = coder.decode_into(sp.payload[:cut], h.top, h.nplanes, lay.classes, scale, lay.boxes)
        reused = coder.decode_into(
            sp.payload[:cut], h.top, h.nplanes, lay.classes, scale, lay.boxes, work
        )
        assert fresh.status == reused.status
        assert np.array_equal(fresh.rec, reused.rec)
    with pytest.raises(ValueError, match="work"):
        coder.decode_into(sp.payload, h.top, h.nplanes, lay.classes, scale, lay.boxes, work[:5])
    out = np.zeros(lay.n)
    into = coder.decode_into(sp.payload, h.top, h.nplanes, lay.classes, scale, lay.boxes, out=out)
    assert into.rec is out and np.array_equal(out, fresh_full.rec)
    with pytest.raises(ValueError, match="out"):
        coder.decode_into(sp.payload, h.top, h.nplanes, lay.classes, scale, lay.boxes, out=out[1:])


def test_bit_length_histogram_equals_numpy_frexp():
    """The one-pass GIL-free histogram equals numpy's frexp exponents counted by bincount, on
    ordinary, edge (0, 2**53 - 1, 2**60, negative) and multi-dimensional magnitudes."""
    rng = np.random.default_rng(12)
    cases = [
        rng.exponential(50, 70001).astype(np.int64),
        np.array([0, 1, 2, 3, 2**40, 2**53 - 1, 2**60, -7], dtype=np.int64),
        rng.integers(0, 2**45, (7, 9, 11)),
        np.zeros(0, dtype=np.int64),
    ]
    for mag in cases:
        want = np.bincount(np.frexp(mag.astype(np.float64))[1].ravel(), minlength=65)[:65]
        got = streams.bit_lengths(mag)
        assert got.dtype == np.int64 and np.array_equal(got, want)


def test_thread_benchmark_measures_both_counts_with_the_background_option():
    from wdrcodec.parallel_bench import measure

    vol = _series(t=2, z=16, y=64, x=64)
    rows = measure(vol, 1.0, (1, 2), 1, background="off")
    assert [r.threads for r in rows] == [1, 2]
    assert all(r.decode_s > 0 and r.encode_path_s > 0 for r in rows)
