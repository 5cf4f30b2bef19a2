"""wdrcodec: embedded 2D/3D wavelet-difference-reduction codec for medical volumes.

>>> import numpy as np, wdrcodec
>>> vol = (np.arange(4 * 16 * 16) % 251).astype(np.uint16).reshape(4, 16, 16)
>>> blob = wdrcodec.encode(vol, lossless=True)
>>> bool((wdrcodec.decode(blob) == vol).all())
True

The codec functions are imported lazily (numba loads on first use), so ``wdrcodec --help`` is
fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from wdrcodec.errors import WdrError

try:
    __version__ = version("wdrcodec")
except PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0+unknown"

_LAZY = {
    "DecodeConfig": "wdrcodec.config",
    "Decoded": "wdrcodec.codec",
    "EncodeConfig": "wdrcodec.config",
    "Encoded": "wdrcodec.codec",
    "encode_full": "wdrcodec.codec",
    "decode": "wdrcodec.codec",
    "decode_full": "wdrcodec.codec",
    "encode": "wdrcodec.codec",
    "read_header": "wdrcodec.codec",
    "Header": "wdrcodec.container",
}

__all__ = ["WdrError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wdrcodec' has no attribute {name!r}")
