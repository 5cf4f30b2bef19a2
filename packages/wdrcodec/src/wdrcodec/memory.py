"""How much memory a decode needs, and the check made before any of it is allocated.

The estimate is a fit to measured peak resident memory of ``wdrcodec decode`` (see README,
"Decoder memory"): a fixed cost per voxel (the scan-order reconstruction, the coefficient volume,
the insignificant-set list and the output array) plus a cost per byte of payload (the file read
and copies of it, and the per-significant-coefficient lists, whose length grows with the rate).
A header's claim is checked against ``--max-voxels`` and against the memory available now
(``MemAvailable``), or ``--max-memory`` when given, before the decoder allocates anything.
"""

from __future__ import annotations

import math
import os

from wdrcodec.config import DecodeConfig
from wdrcodec.errors import WdrError

# fitted constants (bytes); see decode_memory
PER_VOXEL = 22.0
PER_VOXEL_LOSSLESS = 30.0
PER_PAYLOAD_BYTE = 60.0
BASE = 64 << 20


def available_memory() -> int:
    """Memory available to a new allocation now, in bytes (``MemAvailable``; 0 if unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_AVPHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def decode_memory(n_voxels: int, itemsize: int, payload_len: int, lossless: bool) -> int:
    """Estimated peak memory (bytes) of decoding ``n_voxels`` from ``payload_len`` bytes.

    ``itemsize`` is the output dtype's size in bytes. The significant-coefficient lists cost
    14 bytes per significant coefficient, and a coefficient costs at least about 2 bits of
    payload, which gives the per-payload-byte term (capped at every voxel significant).
    """
    per_voxel = PER_VOXEL_LOSSLESS if lossless else PER_VOXEL
    sig_bytes = min(payload_len * PER_PAYLOAD_BYTE, 14.0 * n_voxels + 3.0 * payload_len)
    return int(BASE + n_voxels * (per_voxel + itemsize) + sig_bytes)


def check_resources(
    name: str,
    shape: tuple[int, ...],
    dtype: str,
    payload_len: int,
    lossless: bool,
    limits: DecodeConfig,
) -> None:
    """Refuse a header whose decode exceeds ``limits`` (:class:`WdrError` naming the option)."""
    check_voxels(name, shape, limits)
    nvox = math.prod(shape)
    itemsize = 8 if dtype == "float64" else 4 if dtype == "float32" else 2
    need = decode_memory(nvox, itemsize, payload_len, lossless)
    if limits.max_memory is not None:
        cap = int(limits.max_memory * 2**30)
        what = f"the --max-memory limit of {limits.max_memory:g} GiB"
    else:
        cap = available_memory()
        what = f"the {cap / 2**30:.1f} GiB of memory available now"
    if cap and need > cap:
        raise WdrError(
            f"{name}: array {'x'.join(map(str, shape))} would need ~{need / 2**30:.2f} GiB to "
            f"decode, more than {what} (corrupted header? free memory, or set --max-memory GIB "
            "to try anyway)"
        )


def check_voxels(name: str, shape: tuple[int, ...], limits: DecodeConfig) -> None:
    """Refuse a header claiming more voxels than ``--max-voxels``."""
    nvox = math.prod(shape)
    if nvox > limits.max_voxels:
        raise WdrError(
            f"{name}: array {'x'.join(map(str, shape))} has {nvox} voxels, more than the decoder "
            f"limit of {limits.max_voxels} (corrupted header? if the file is trusted, raise the "
            "limit with --max-voxels)"
        )
