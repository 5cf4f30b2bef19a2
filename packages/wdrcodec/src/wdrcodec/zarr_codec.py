"""The numcodecs codec ``wdr`` (needs ``numcodecs``; registered in ``numcodecs.codecs``).

numcodecs loads this module through the entry point when a zarr array's metadata names the
codec id ``wdr``; importing it registers :class:`WDR` explicitly too. See
:mod:`wdrcodec.chunks` for the chunk layout and options.
"""

from __future__ import annotations

try:
    from numcodecs.abc import Codec
    from numcodecs.registry import register_codec
except ImportError as exc:  # pragma: no cover - exercised only without numcodecs
    from medshared.errors import MissingExtraError

    raise MissingExtraError(
        "the zarr/numcodecs codec needs numcodecs; install it with: pip install numcodecs"
    ) from exc

from wdrcodec.chunks import WdrChunkCodec


class WDR(WdrChunkCodec, Codec):
    """numcodecs codec storing each chunk as a ``.wdr`` stream (lossless or fixed rate)."""

    codec_id = "wdr"


register_codec(WDR)
