"""The decoder's fast inverse 9/7 kernels (zero skipping, fused sweeps, per-slice X+Y pass)
against the step-by-step numpy reference, on inputs with zero lines, slabs and high bands."""

from __future__ import annotations

import numpy as np
import pytest

from wdrcodec.lifting import inverse_yx, lift_region
from wdrcodec.wavelets import apply_axis, inv97


def _sparse(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Random coefficients with whole zero lines/slices and zero high halves (low-rate like)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10, shape)
    x[rng.random(shape) < 0.5] = 0.0
    z, y, _ = shape
    x[z // 2 :] = 0.0  # high band along Z zero
    x[:, (y + 1) // 2 :, : shape[2] // 2] = 0.0  # lines with a zero low half
    x[:, : y // 3, (shape[2] + 1) // 2 :] = 0.0  # lines with a zero high half
    x[0] = 0.0  # an all-zero slice
    return x


@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 5, 7), (8, 9, 16), (9, 16, 11), (16, 32, 33)])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_inverse_kernels_match_reference(shape, axis):
    x = _sparse(shape, seed=sum(shape) + axis)
    ref = x.copy()
    apply_axis(ref, axis, inv97)
    got = x.copy()
    lift_region(got, axis, lossless=False, forward=False)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-9)
    if axis == 2:  # same operations in the same order (both divide by the band scale)
        assert np.array_equal(got, ref)
    zero = ~np.moveaxis(x, axis, -1).any(axis=-1)  # all-zero lines stay exactly zero
    assert not np.moveaxis(got, axis, -1)[zero].any()


@pytest.mark.parametrize("shape", [(1, 2, 2), (3, 5, 7), (8, 9, 16), (16, 32, 33)])
def test_inverse_yx_equals_two_passes_exactly(shape):
    base = _sparse((shape[0] + 3, shape[1] + 4, shape[2] + 5), seed=7)
    a = base.copy()
    b = base.copy()
    region_a = a[: shape[0], : shape[1], : shape[2]]  # a strided sub-box view, as in decoding
    region_b = b[: shape[0], : shape[1], : shape[2]]
    inverse_yx(region_a)
    lift_region(region_b, 2, lossless=False, forward=False)
    lift_region(region_b, 1, lossless=False, forward=False)
    assert np.array_equal(a, b)  # also: nothing outside the region touched
    assert np.array_equal(a[shape[0] :], base[shape[0] :])


_BOX_SHAPES = [(2, 2, 2), (3, 5, 7), (8, 9, 16), (9, 16, 11), (16, 33, 32)]


@pytest.mark.parametrize("shape", _BOX_SHAPES)
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("view", ["whole", "leading box", "inner box", "tail box"])
def test_box_kernels_equal_the_any_layout_kernels_exactly(shape, axis, view):
    """The contiguous-row kernels (C-contiguous parent + box, Z rows grouped) give bit for bit
    the values of the original any-layout kernels, on whole arrays, leading sub-box views (as
    in multi-level decoding), inner views and views at the end of their memory (no C parent
    fits there: the fallback)."""
    from wdrcodec import lifting

    pad = (0, 0, 0) if view == "whole" else (2, 3, 4)
    big = _sparse(tuple(s + p for s, p in zip(shape, pad)), seed=sum(shape) * 3 + axis)
    a, b = big.copy(), big.copy()
    if view == "inner box":
        sl = tuple(slice(1, 1 + s) for s in shape)
    elif view == "tail box":
        sl = tuple(slice(p, p + s) for s, p in zip(shape, pad))
    else:
        sl = tuple(slice(0, s) for s in shape)
    ra, rb = a[sl], b[sl]
    parent = lifting.c_parent(ra)
    assert (parent is None) == (view == "tail box")
    if parent is not None:
        assert np.shares_memory(parent, ra)
        assert np.array_equal(parent[: shape[0], : shape[1], : shape[2]], ra)
    lift_region(ra, axis, lossless=False, forward=False)  # box kernels (or the fallback)
    if axis == 2:
        lifting._inv97_lines(rb, np.empty(shape[2]))
    else:
        v = rb[None] if axis == 0 else rb[:, :, None, :]
        lifting._inv97(v, np.empty((v.shape[1], v.shape[3])))
    assert np.array_equal(a, b)
    ref = big[sl].copy()
    apply_axis(ref, axis, inv97)
    np.testing.assert_allclose(ra, ref, rtol=1e-12, atol=1e-9)
    outside = np.ones(big.shape, dtype=bool)
    outside[sl] = False
    assert np.array_equal(a[outside], big[outside])  # nothing outside the box touched


@pytest.mark.parametrize("shape", _BOX_SHAPES)
def test_box_yx_equals_the_any_layout_kernel_exactly(shape):
    from wdrcodec import lifting

    big = _sparse((shape[0] + 1, shape[1] + 2, shape[2] + 3), seed=11)
    a, b = big.copy(), big.copy()
    ra, rb = a[: shape[0], : shape[1], : shape[2]], b[: shape[0], : shape[1], : shape[2]]
    inverse_yx(ra)
    lifting._inv97_yx(rb, np.empty(shape[2]), np.empty((shape[1], shape[2])))
    assert np.array_equal(a, b)


def test_c_parent_is_the_leading_slices_of_the_owner():
    from wdrcodec.lifting import c_parent

    base = np.arange(5 * 6 * 7, dtype=np.float64).reshape(5, 6, 7)
    region = base[:3, :4, :5]
    parent = c_parent(region)
    assert parent.flags.c_contiguous and parent.shape == (3, 6, 7)
    assert np.shares_memory(parent, base) and np.array_equal(parent[:3, :4, :5], region)
    assert c_parent(base) is base
    assert c_parent(base[1:, 1:, 1:]) is None  # its span would pass the end of the memory
    assert c_parent(base[:, :, ::2]) is None  # strided rows
    assert c_parent(np.asfortranarray(base)[:2, :2, :2]) is None


# ----------------------------------------------------------------------------- sparse windows


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint64)  # bit for bit, signed zeros included


def _low_rate_like(shape: tuple[int, int, int], density: float, seed: int) -> np.ndarray:
    """A dense low band (first half along Y and X) and whole detail subbands that are zero or
    hold a few scattered values, as a low-rate decode leaves them."""
    rng = np.random.default_rng(seed)
    z, y, x = shape
    a = np.zeros(shape)
    a[:, : (y + 1) // 2, : (x + 1) // 2] = rng.normal(0, 50, (z, (y + 1) // 2, (x + 1) // 2))
    hit = rng.random(shape) < density
    a[hit] = rng.normal(0, 20, int(hit.sum()))
    a[:, (y + 1) // 2 :, (x + 1) // 2 :] = 0.0  # a whole zero subband
    return a


@pytest.mark.parametrize(
    "shape", [(1, 1, 9), (2, 9, 1), (2, 2, 2), (3, 5, 7), (4, 31, 66), (3, 64, 200), (2, 130, 97)]
)
@pytest.mark.parametrize("density", [0.0, 0.0005, 0.01, 0.2])
def test_windowed_yx_equals_the_plain_kernel_bit_for_bit(shape, density):
    from wdrcodec import lifting

    n0, n1, n2 = shape
    base = _low_rate_like((n0 + 1, n1 + 2, n2 + 3), density, seed=n0 * 1000 + n1 + n2)
    base[:, :, (n2 + 1) // 2 :] *= np.random.default_rng(3).random(base.shape[1:])[:, -1:] < 0.5
    a, b = base.copy(), base.copy()
    lifting.inv97_box_yx(a, n0, n1, n2, np.empty(n2), np.empty(n1 * n2))
    lifting.inv97_box_yx_plain(b, n0, n1, n2, np.empty(n2), np.empty(n1 * n2))
    assert np.array_equal(_bits(a), _bits(b))  # the box and everything outside it


@pytest.mark.parametrize("n", [2, 3, 8, 33, 64, 255, 256])
def test_windowed_line_equals_the_whole_line(n):
    """Every placement of one or two nonzero values (ends included): the window gives the
    whole line's values, and the line is zero outside the returned output range."""
    from wdrcodec import lifting

    ns = (n + 1) // 2
    rng = np.random.default_rng(n)
    for _ in range(60):
        v = np.zeros(n)
        for i in rng.integers(0, n, size=rng.integers(1, 3)):
            v[i] = rng.normal(0, 9)
        ref = v.copy()
        lifting._inv97_line(ref, np.empty(n))
        lo = np.flatnonzero(v[:ns])
        hi = np.flatnonzero(v[ns:])
        u0 = min([*lo, *hi])
        u1 = max([*lo, *hi]) + 1
        w0, w1 = max(u0 - lifting.MARGIN, 0), min(u1 + lifting.MARGIN, ns)
        got = v.copy()
        s, e = lifting._inv97_line_win(got, np.full(n, np.nan), w0, w1)
        assert np.array_equal(_bits(got), _bits(ref))
        assert not got[:s].any() and not got[e:].any()


@pytest.mark.parametrize("n", [2, 3, 9, 64, 129])
def test_windowed_slab_equals_the_whole_slab(n):
    from wdrcodec import lifting

    ns = (n + 1) // 2
    rng = np.random.default_rng(n + 1)
    for _ in range(30):
        m2 = np.zeros((n, 40))
        rows = rng.integers(0, n, size=rng.integers(1, 4))
        m2[rows, rng.integers(0, 40, size=rows.size)] = rng.normal(0, 9, rows.size)
        half = np.where(rows < ns, rows, rows - ns)
        w0 = max(int(half.min()) - lifting.MARGIN, 0)
        w1 = min(int(half.max()) + 1 + lifting.MARGIN, ns)
        ref, got = m2.copy(), m2.copy()
        lifting._inv97_rows(ref, 8, n, 24, np.empty(n * 24))
        lifting._inv97_rows_win(got, 8, n, 24, np.full(n * 24, np.nan), w0, w1)
        assert np.array_equal(_bits(got), _bits(ref))


def _reference_decode(blob: bytes) -> np.ndarray:
    """The codec's decode of a 3D file, with the plain any-layout lifting kernels (no
    windows, no box kernels) and numpy for the last rounding."""
    from wdrcodec import coder, lifting
    from wdrcodec.container import internal_shape, split
    from wdrcodec.decomposition import _dyadic_steps
    from wdrcodec.layout import make_layout

    sp = split(blob)
    h = sp.header
    shape4 = internal_shape(h.shape, h.order)
    lay = make_layout(shape4, h.grouping, h.levels, h.packet)
    assert len(lay.blocks) == 1 and not h.packet
    blk = lay.blocks[0]
    m = coder.decode_into(sp.payload, h.top, h.nplanes, lay.classes, 2.0**-h.frac_bits, lay.boxes)
    c = m.rec.reshape(blk.shape)
    for _level, axes, cur in reversed(list(_dyadic_steps(c.shape, blk.lv))):
        region = c[: cur[0], : cur[1], : cur[2]]
        for a in axes[::-1]:
            if region.shape[a] < 2:
                continue
            if a == 2:
                lifting._inv97_lines(region, np.empty(region.shape[2]))
            elif a == 1:
                lifting._inv97(region[:, :, None, :], np.empty((region.shape[1], region.shape[2])))
            else:
                lifting._inv97(region[None], np.empty((region.shape[0], region.shape[2])))
    rec = np.clip(np.rint(c + h.mean), float(h.vmin), float(h.vmax))
    return rec.astype(h.dtype).reshape(shape4[1:])


@pytest.mark.parametrize("bpv", [0.05, 0.25, 0.5, 2.0])
@pytest.mark.parametrize("threads", [1, 2])
def test_decode_with_the_fast_paths_equals_the_plain_kernels(bpv, threads):
    """Low rates leave whole fine subbands zero (the windowed paths); the decode equals,
    bit for bit, the same coefficients inverted with the plain any-layout kernels."""
    import wdrcodec
    from wdrcodec.config import DecodeConfig

    rng = np.random.default_rng(4)
    z, y, x = np.meshgrid(np.arange(16), np.arange(96), np.arange(80), indexing="ij")
    vol = 2000 + 800 * np.sin(x / 6.0) * np.cos(y / 9.0) + 40 * z + rng.normal(0, 15, z.shape)
    vol = np.clip(vol, 0, 4095).astype(np.uint16)
    blob = wdrcodec.encode(vol, bpv=bpv, background="off")
    got = wdrcodec.decode(blob, limits=DecodeConfig(threads=threads))
    assert np.array_equal(got, _reference_decode(blob))
