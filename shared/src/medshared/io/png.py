"""2D grayscale PNG images, 8- or 16-bit, via Pillow (extra ``png``).

The size in the PNG header is checked before decoding: the deflate-compressed file must be able
to hold ``height * (1 + width * bytes_per_pixel)`` bytes (at most 1032 times its size) and the
image must fit in the available memory; Pillow's own decompression-bomb warning is kept quiet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medshared.errors import MedsharedError, require
from medshared.io._checks import (
    PathLike,
    check_input_file,
    check_suffix,
    reraise_write_errors,
)
from medshared.io._limits import check_allocation, check_file_holds
from medshared.io._reading import captured_library_messages, read_errors
from medshared.io.atomic import atomic_path

__all__ = ["read_png", "write_png"]

PNG_SUFFIXES = (".png",)
_KIND = "PNG"
_GRAY_MODES = {
    "L": np.uint8,
    "1": np.uint8,
    "I;16": np.uint16,
    "I;16B": np.uint16,
    "I;16L": np.uint16,
    "I": np.uint16,
}


def read_png(path: PathLike) -> np.ndarray:
    """Read a grayscale PNG.

    Parameters
    ----------
    path : str or PathLike
        ``.png`` file, 1-, 8- or 16-bit grayscale without alpha.

    Returns
    -------
    np.ndarray
        Shape ``(Y, X)`` (row-major: rows top to bottom), ``uint8`` for 1-bit (0/255) and
        8-bit files, ``uint16`` for 16-bit files.

    Raises
    ------
    MedsharedError
        Naming the file, for: wrong extension, missing file, not a PNG/corrupt/truncated, a
        colour/palette/alpha image (mode is named).
    """
    pil = require("PIL.Image", "png")
    p = check_input_file(path, PNG_SUFFIXES, _KIND)
    errors = (OSError, ValueError, SyntaxError, EOFError)
    try:
        with read_errors(p, _KIND, errors), captured_library_messages("PIL"):
            return _read(pil, p)
    except pil.DecompressionBombError as exc:
        raise MedsharedError(
            f"{_KIND} file {p}: the header declares an image too large to decode ({exc}); the "
            "file is corrupt or a decompression bomb"
        ) from exc


def _read(pil: Any, p: Path) -> np.ndarray:
    with pil.open(p) as img:
        if img.format != "PNG":
            raise MedsharedError(f"{_KIND} file {p}: not a PNG (format {img.format})")
        mode = img.mode
        if mode not in _GRAY_MODES:
            raise MedsharedError(
                f"{_KIND} file {p}: not a grayscale image (mode {mode}); "
                "only 8/16-bit grayscale PNG is supported"
            )
        width, height = (int(v) for v in img.size)
        itemsize = np.dtype(_GRAY_MODES[mode]).itemsize
        what = f"the header declares {width} x {height} pixels"
        check_file_holds(p, height * (1 + width * itemsize), what, compressed=True, kind=_KIND)
        check_allocation(4 * width * height, p, f"image {width} x {height}")
        img.load()
        if mode == "1":
            img = img.convert("L")
        arr = np.asarray(img)
    if mode == "I":  # 16-bit grayscale opened as int32 by some Pillow versions
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            raise MedsharedError(f"{_KIND} file {p}: 32-bit integer values do not fit uint16")
    return np.ascontiguousarray(arr, dtype=_GRAY_MODES[mode])


def write_png(path: PathLike, array: np.ndarray) -> None:
    """Write a 2D ``uint8`` or ``uint16`` array as an 8- or 16-bit grayscale PNG, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target ``.png`` (the folder must exist).
    array : np.ndarray
        Shape ``(Y, X)``, dtype ``uint8`` (8-bit PNG) or ``uint16`` (16-bit PNG). Other dtypes
        are rejected rather than silently rescaled: convert explicitly first.

    Raises
    ------
    MedsharedError
        Wrong extension, ``ndim != 2`` (e.g. RGB ``(Y, X, 3)``), unsupported dtype, or a write
        failure (the target is then left untouched).
    """
    pil = require("PIL.Image", "png")
    p = check_suffix(path, PNG_SUFFIXES, _KIND)
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise MedsharedError(
            f"{_KIND} file {p}: expected a 2D grayscale array (Y, X), got ndim={arr.ndim} "
            f"(shape {arr.shape}); RGB and 3D arrays are not supported"
        )
    if arr.dtype not in (np.uint8, np.uint16):
        raise MedsharedError(
            f"{_KIND} file {p}: dtype {arr.dtype} not supported; convert to uint8 or uint16"
        )
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    img = pil.fromarray(arr)
    with reraise_write_errors(p, _KIND), atomic_path(p) as tmp:
        img.save(Path(tmp), format="PNG")
