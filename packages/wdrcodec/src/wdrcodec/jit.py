"""The JIT kernels' on-disk cache: say so before a first-run compile instead of a silent wait.

The numba kernels (:mod:`wdrcodec.coder`, :mod:`wdrcodec.lifting`, the GIL-free wrappers of
:mod:`wdrcodec.parallel`) are compiled on first use and
cached next to the modules (``__pycache__``, or ``NUMBA_CACHE_DIR``). Loading the cache costs
~0.1 s; compiling costs 30-60 s once per machine and numba version. :func:`ensure_compiled` prints
one line on stderr when the cache is missing, then runs tiny lossy, lossless and 4D round trips so
every kernel is loaded (or compiled and cached) before real work or a process pool starts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# ctxcoder compiles into parallel's wrappers; shape_adaptive and mask serve the default lossless
# path of masked volumes (--background auto)
_MODULES = ("coder", "lifting", "parallel", "shape_adaptive", "mask")
_done = False


def _fast_start() -> None:
    """CLI processes only: let numba initialise without importing ``scipy.linalg``.

    numba's first kernel load imports ``scipy.linalg`` only to probe for BLAS (``np.dot`` inside
    jitted code), which the codec never uses; that import is ~0.1 s of CPU time of every CLI call
    (measured: 0.26 -> 0.17 s for numba's target initialisation). The block applies only while
    numba initialises, only when nothing imported ``scipy.linalg`` before, and is lifted right
    after, so later ``import scipy.linalg`` works normally. Library users never get it: a Python
    process may want numba's BLAS support for its own kernels.
    """
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    sys.modules["scipy.linalg"] = None  # type: ignore[assignment]
    try:
        import wdrcodec.lifting  # noqa: F401 - the first kernel load initialises numba
    finally:
        if sys.modules.get("scipy.linalg", 0) is None:
            del sys.modules["scipy.linalg"]


def cache_dirs() -> list[Path]:
    """Folders where numba keeps this package's kernel cache: ``NUMBA_CACHE_DIR`` alone when it
    is set (numba's first cache locator then uses it for every kernel, so an index left in the
    package's ``__pycache__`` does not mean the kernels are compiled), else ``__pycache__``."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return [Path(env)]
    return [Path(__file__).resolve().parent / "__pycache__"]


def _indexed(pattern: str) -> bool:
    return any(d.is_dir() and any(d.rglob(pattern)) for d in cache_dirs())


def cache_present(coder: str = "wdr") -> bool:
    """True when a kernel cache index exists for every JIT module (no compile needed); with
    ``coder="ctx"`` also for the context coder's kernels, which only ``--coder ctx`` runs."""
    if not all(_indexed(f"{mod}.*.nbi") for mod in _MODULES):
        return False
    return coder != "ctx" or _indexed("parallel.*ctx_encode*.nbi")


def ensure_compiled(quiet: bool = False, cli: bool = False, coder: str = "wdr") -> None:
    """Load every kernel once; announce a first-run compile on stderr unless ``quiet``.

    ``cli=True`` (command-line processes only) also skips numba's BLAS probe, see
    :func:`_fast_start`, and, when the cache is present, the warm-up round trips (kernels then
    load lazily, only those the call uses). ``coder="ctx"`` (an encode with ``--coder ctx``)
    also checks, announces and warms the context coder's kernels.
    """
    global _done
    if _done:
        return
    present = cache_present(coder)
    if not quiet and not present:
        print(
            "wdrcodec: compiling the JIT kernels (first run on this machine, ~30-60 s; cached "
            "afterwards)...",
            file=sys.stderr,
            flush=True,
        )
    if cli:
        _fast_start()
        if present:
            # one command-line call: each kernel loads from the cache when first used, so a
            # call pays only for the kernels it runs (~0.1-0.2 s less than loading them all)
            _done = True
            return
    import numpy as np

    from wdrcodec.codec import decode, encode

    small = (np.arange(4 * 16 * 16) % 7).astype(np.uint8).reshape(4, 16, 16)
    decode(encode(small, bpv=2.0))
    decode(encode(small, lossless=True))
    # a masked volume (zero background): the shape-adaptive transform and the mask coder, which
    # --background auto uses for lossless files
    masked = np.zeros((4, 16, 16), np.uint8)
    masked[1:3, 4:12, 4:12] = small[1:3, 4:12, 4:12] + 1
    decode(encode(masked, lossless=True))
    # a 4D series of two 65536-voxel volumes: one stream per volume (the format-3 path)
    series = (np.arange(2 * 16 * 64 * 64) % 11).astype(np.uint8).reshape(2, 16, 64, 64)
    decode(encode(series, bpv=0.5, slice_axis=1, time_axis=0))
    # the decoder's fused last pass compiles once per output dtype (the round trips above
    # cover uint8)
    from wdrcodec.codec import INTEGER_DTYPES
    from wdrcodec.lifting import Z_GROUP, inv97_z_final

    coef = np.zeros((4, 2, 4))
    for dt in INTEGER_DTYPES:
        out = np.empty(coef.shape, dtype=dt)
        inv97_z_final(coef, out, 0, 2, np.empty(4 * 4 * Z_GROUP), 0.0, 0.0, 1.0)
    if coder == "ctx":
        decode(encode(small, bpv=2.0, coder="ctx"))
        decode(encode(small, lossless=True, coder="ctx"))
        decode(encode(masked, lossless=True, coder="ctx"))
    _done = True
