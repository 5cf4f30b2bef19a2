"""Memory and size limits: refuse what a header merely claims before allocating it.

Every reader calls :func:`check_allocation` with the number of bytes a header declares *before*
it allocates an array of that size, and checks the declared size against the real file size
first (:func:`check_file_holds`). Other packages call them too (e.g. a decoder's memory estimate).

The available memory is ``MemAvailable`` from ``/proc/meminfo``, lowered to the cgroup limit
(``memory.max`` minus ``memory.current``, cgroup v2) when a container sets one. Where neither can
be read (not Linux), only the explicit ``limit`` applies.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from medshared.errors import AllocationError, MedsharedError

__all__ = [
    "DEFLATE_MAX_RATIO",
    "available_memory",
    "check_allocation",
    "check_file_holds",
    "format_bytes",
    "nbytes_of",
]

MEMORY_FRACTION = 0.9
"""Share of the available memory one allocation may take (the rest is left for the program)."""

DEFLATE_MAX_RATIO = 1032
"""Upper bound of deflate's compression ratio (RFC 1951: 258-byte matches in ~2 bits)."""

_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units, 3 significant digits)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} EiB"  # pragma: no cover - unreachable


def nbytes_of(shape: tuple[int, ...], itemsize: int) -> int:
    """Exact byte count of an array of ``shape`` (Python ints: no overflow for absurd shapes)."""
    return math.prod(int(s) for s in shape) * int(itemsize)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes this process may still allocate, or None when the system does not say.

    ``MemAvailable`` from ``/proc/meminfo``, capped by the cgroup v2 limit (``memory.max`` minus
    ``memory.current``) when one is set.
    """
    avail: int | None = None
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        avail = None
    limit, used = _read_int(_CGROUP / "memory.max"), _read_int(_CGROUP / "memory.current")
    if limit is not None and used is not None:
        room = max(limit - used, 0)
        avail = room if avail is None else min(avail, room)
    return avail


def check_allocation(
    nbytes: int,
    path: str | os.PathLike[str] | None,
    what: str = "data",
    *,
    limit: int | None = None,
    hint: str | None = None,
) -> None:
    """Raise :class:`~medshared.errors.AllocationError` if ``nbytes`` cannot be allocated.

    Parameters
    ----------
    nbytes : int
        Bytes about to be allocated (from a header's claim or an estimate).
    path : str or PathLike or None
        File the claim comes from; named in the message.
    what : str
        What the bytes are, e.g. ``"voxel data (512, 512, 300) int16"``; named in the message.
    limit : int, optional
        Explicit cap in bytes (e.g. from a CLI option). When given it replaces the check against
        the available memory, so a user can raise (or lower) the bound deliberately.
    hint : str, optional
        Appended to the message, e.g. ``"raise the limit with --max-memory GIB"``.

    Raises
    ------
    AllocationError
        Also a ``MemoryError``; the message names the file, the size and the bound.
    """
    nbytes = int(nbytes)
    where = f"{path}: " if path is not None else ""
    tail = f"; {hint}" if hint else ""
    if nbytes < 0:
        raise MedsharedError(f"{where}{what} has a negative size ({nbytes} bytes)")
    if limit is not None:
        if nbytes > limit:
            raise AllocationError(
                f"{where}{what} needs {format_bytes(nbytes)}, more than the limit of "
                f"{format_bytes(limit)}{tail}"
            )
        return
    avail = available_memory()
    if avail is not None and nbytes > MEMORY_FRACTION * avail:
        raise AllocationError(
            f"{where}{what} needs {format_bytes(nbytes)}, more than the "
            f"{format_bytes(avail)} of memory available (the header is corrupt or the file too "
            f"large for this machine){tail}"
        )


def check_file_holds(
    path: Path, needed: int, what: str, *, compressed: bool = False, kind: str = "file"
) -> None:
    """Raise unless the file at ``path`` can hold ``needed`` bytes of (uncompressed) content.

    For a plain file the file must be at least ``needed`` bytes long. For deflate/gzip-compressed
    content, ``needed`` may not exceed :data:`DEFLATE_MAX_RATIO` times the file size: no valid
    stream decompresses to more, so a tiny file claiming gigabytes is refused without reading it.
    (The decompressed length itself is still verified by the reader.)
    """
    size = path.stat().st_size
    bound = size * DEFLATE_MAX_RATIO + 64 if compressed else size
    if needed > bound:
        how = (
            f"a {format_bytes(size)} compressed file cannot hold {format_bytes(needed)}"
            if compressed
            else f"the file holds {size} bytes, {needed} are needed"
        )
        raise MedsharedError(f"{kind} file {path}: truncated or corrupt: {what} ({how})")
