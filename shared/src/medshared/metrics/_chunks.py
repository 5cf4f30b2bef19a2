"""Slab-wise evaluation of separable local filters, exactly equal to the whole-image result.

The images are cut into slabs of whole planes along one axis (the one with the largest stride,
so a slab is a contiguous block of memory for C- and Fortran-ordered arrays alike). A separable
filter of radius ``r`` is run along the slab axis on the slab extended by ``r`` planes on each
side (the *halo*, clipped at the image border, where the boundary rule then applies exactly as on
the whole image); the halo is dropped and the remaining axes are filtered on the slab alone.
Every output voxel is computed by the same 1D passes from the same inputs as on the whole image,
so the result is bit-identical, while the memory is bounded by the slab size instead of the
image size. Reductions are taken as per-plane float64 sums (:func:`plane_sums`), so a mean does
not depend on the slab size either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from medshared.metrics._parallel import map_filter

#: Voxels per slab (one float64 temporary of a slab is 8x this many bytes: 32 MiB).
CHUNK_VOXELS = 1 << 22

Filter1d = Callable[[np.ndarray, int], np.ndarray]


def slab_axis(arr: np.ndarray) -> int:
    """The axis with the largest stride (the slowest-varying one in memory)."""
    if arr.ndim == 0:
        return 0
    strides = [abs(s) if n > 1 else -1 for s, n in zip(arr.strides, arr.shape)]
    return int(np.argmax(strides))


def planes_per_slab(shape: tuple[int, ...], chunk: int | None) -> int:
    """Planes (along axis 0 of ``shape``) per slab: ``chunk``, or about :data:`CHUNK_VOXELS`."""
    if chunk is not None:
        return max(1, int(chunk))
    plane = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    return max(1, CHUNK_VOXELS // max(plane, 1))


def slabs(n: int, planes: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive slabs covering ``range(n)``."""
    for z0 in range(0, n, planes):
        yield z0, min(n, z0 + planes)


def as_float_slab(arr: np.ndarray, z0: int, z1: int) -> np.ndarray:
    """Planes ``z0:z1`` of ``arr`` (axis 0) as a C-contiguous float64 copy (always a copy)."""
    return np.array(arr[z0:z1], dtype=np.float64, order="C", copy=True)


def plane_sums(block: np.ndarray) -> np.ndarray:
    """Float64 sum of every plane (axis 0) of ``block``; the same for any slab cut."""
    block = np.ascontiguousarray(block, dtype=np.float64)
    return block.reshape(block.shape[0], -1).sum(axis=1)


def filtered_slabs(
    arrays: Sequence[np.ndarray],
    products: Callable[[list[np.ndarray]], list[np.ndarray]],
    filter1d: Filter1d,
    radius: int,
    chunk: int | None = None,
) -> Iterator[tuple[int, int, list[np.ndarray], list[np.ndarray]]]:
    """Yield ``(z0, z1, interior, filtered)`` for consecutive slabs along axis 0.

    Parameters
    ----------
    arrays : sequence of np.ndarray
        Images of equal shape (any dtype); the slab axis is axis 0.
    products : callable
        Maps the float64 slabs (with halo) of ``arrays`` to a list of zero-argument callables,
        each making one image to filter (e.g. ``x, y, x*x, y*y, x*y``); they are called
        lazily, one per worker thread.
    filter1d : callable
        ``filter1d(a, axis) -> a filtered along axis`` (a 1D pass of a separable filter).
    radius : int
        The filter's reach in voxels along one axis (halo planes per side).
    chunk : int, optional
        Planes per slab; default about :data:`CHUNK_VOXELS` voxels.

    Yields
    ------
    z0, z1 : int
        The slab's planes ``z0:z1``.
    interior : list of np.ndarray
        The float64 planes ``z0:z1`` of each input array.
    filtered : list of np.ndarray
        Each product filtered along every axis, planes ``z0:z1`` only (float64).
    """
    n = arrays[0].shape[0]
    ndim = arrays[0].ndim
    for z0, z1 in slabs(n, planes_per_slab(arrays[0].shape, chunk)):
        s0, s1 = max(0, z0 - radius), min(n, z1 + radius)
        data = [as_float_slab(a, s0, s1) for a in arrays]
        lo, hi = z0 - s0, z1 - s0

        def full(
            make: Callable[[], np.ndarray], lo: int = lo, hi: int = hi
        ) -> np.ndarray:
            out = filter1d(make(), 0)[lo:hi]
            for axis in range(1, ndim):
                out = filter1d(out, axis)
            return out

        # Each product is made inside its worker, so only as many full-halo temporaries exist
        # at once as there are threads.
        filtered = map_filter(full, products(data), size=data[0].size)
        yield z0, z1, [d[lo:hi] for d in data], filtered


def all_finite(arr: np.ndarray, chunk: int | None = None) -> bool:
    """True if a floating array holds no NaN/inf (checked slab by slab: no full-size mask)."""
    if arr.dtype.kind not in "fc":
        return True
    if arr.ndim == 0:
        return bool(np.isfinite(arr))
    view = np.moveaxis(arr, slab_axis(arr), 0)
    planes = planes_per_slab(view.shape, chunk)
    return all(bool(np.isfinite(view[z0:z1]).all()) for z0, z1 in slabs(view.shape[0], planes))


def arrays_equal(a: np.ndarray, b: np.ndarray, chunk: int | None = None) -> bool:
    """``np.array_equal`` slab by slab (same shape assumed)."""
    axis = slab_axis(a)
    va, vb = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    planes = planes_per_slab(va.shape, chunk)
    return all(
        bool(np.array_equal(va[z0:z1], vb[z0:z1])) for z0, z1 in slabs(va.shape[0], planes)
    )


def abs_max(arr: np.ndarray) -> float:
    """``max |arr|`` without a full-size temporary (no overflow for signed integer minima)."""
    return max(abs(float(np.max(arr))), abs(float(np.min(arr))))
