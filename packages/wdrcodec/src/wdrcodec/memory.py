"""How much memory a decode needs, and the check made before any of it is allocated.

The estimate is a fit to the measured peak resident memory of decodes (README, "Decoder
memory"): a fixed cost per voxel (scan-order reconstruction, coefficient volume, the
insignificant-set list, the output array) plus a cost per payload byte (the significant-coefficient
lists, whose length grows with the rate, and the copies of the file). A header's claim is checked
against ``--max-voxels``, then the estimate against the memory available now (medshared's
:func:`~medshared.io._limits.check_allocation`: ``MemAvailable``, cgroup limit), or against
``--max-memory`` when given, before the decoder allocates anything.
"""

from __future__ import annotations

import math

from wdrcodec.config import DecodeConfig
from wdrcodec.errors import WdrError

# fitted constants (bytes), see decode_memory and the README
BASE = 200 << 20  # interpreter, numpy, numba and the loaded kernels
PER_VOXEL = 14.0  # plus the output dtype's itemsize
PER_PAYLOAD_BYTE = 14.0
# shape-adaptive files (an object mask): the decoded mask, its per-level subband masks and the SA
# kernels' segment tables; measured +6.4 (ctx lossless) and +7.9 (wdr, 2 bpv) bytes per voxel on
# a 128x256x256 masked volume (README, "Decoder memory")
SA_PER_VOXEL = 8.0


def decode_memory(
    n_voxels: int, itemsize: int, payload_len: int, lossless: bool, masked: bool = False
) -> int:
    """Estimated peak memory (bytes, process total) of decoding ``n_voxels`` from
    ``payload_len`` bytes; ``itemsize`` is the output dtype's size in bytes.

    Fitted on 128**3, 256**3 and 512**3 uint16 decodes at 1 and 4 bpv and lossless (README):
    ``BASE + n * (14 + itemsize) + 14 * payload``; the payload term is capped at every voxel
    significant (14 bytes each plus three copies of the payload). ``lossless`` is accepted for
    the record: the measured cost per voxel is the same. ``masked`` (a shape-adaptive file) adds
    :data:`SA_PER_VOXEL` per voxel.
    """
    sig_bytes = min(payload_len * PER_PAYLOAD_BYTE, 14.0 * n_voxels + 3.0 * payload_len)
    per_voxel = PER_VOXEL + itemsize + (SA_PER_VOXEL if masked else 0.0)
    return int(BASE + n_voxels * per_voxel + sig_bytes)


def check_resources(
    name: str,
    shape: tuple[int, ...],
    dtype: str,
    payload_len: int,
    lossless: bool,
    limits: DecodeConfig,
    masked: bool = False,
) -> None:
    """Refuse a header whose decode exceeds ``limits`` (:class:`WdrError` naming the option)."""
    check_voxels(name, shape, limits)
    nvox = math.prod(shape)
    itemsize = 8 if dtype == "float64" else 4 if dtype == "float32" else 2
    need = decode_memory(nvox, itemsize, payload_len, lossless, masked)
    from medshared.errors import AllocationError
    from medshared.io._limits import check_allocation

    limit = None if limits.max_memory is None else int(limits.max_memory * 2**30)
    what = f"decoding its {'x'.join(map(str, shape))} {dtype} array"
    hint = (
        "set a larger --max-memory GIB"
        if limit is not None
        else "if the file is trusted, set --max-memory GIB to try anyway"
    )
    try:
        check_allocation(need, name, what, limit=limit, hint=hint)
    except AllocationError as exc:
        raise WdrError(str(exc)) from None


def check_voxels(name: str, shape: tuple[int, ...], limits: DecodeConfig) -> None:
    """Refuse a header claiming more voxels than ``--max-voxels``."""
    nvox = math.prod(shape)
    if nvox > limits.max_voxels:
        raise WdrError(
            f"{name}: array {'x'.join(map(str, shape))} has {nvox} voxels, more than the decoder "
            f"limit of {limits.max_voxels} (corrupted header? if the file is trusted, raise the "
            "limit with --max-voxels)"
        )
