"""Peak signal-to-noise ratio."""

from __future__ import annotations

import numpy as np

from medshared.metrics._checks import DataRange, as_image_pair, check_finite, resolve_data_range


def mse(ref: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error ``mean((ref - test)^2)`` computed in float64.

    Shape: ``ref`` and ``test`` have the same 2D or 3D shape.
    """
    ref, test = as_image_pair(ref, test, "mse", ndims=(1, 2, 3, 4))
    diff = ref.astype(np.float64) - test.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(ref: np.ndarray, test: np.ndarray, data_range: DataRange | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``.

    Parameters
    ----------
    ref, test:
        Reference and test images, same shape, 2D ``(Y, X)`` or 3D ``(Z, Y, X)`` (4D allowed).
    data_range:
        The peak. Either a number, ``"dtype"`` (full range of ``ref``'s integer dtype: 255 for
        uint8, 65535 for uint16 and int16; the convention of the wdrcodec paper for 16-bit data)
        or ``"ref"`` (``ref.max() - ref.min()``, the reference's actual range).

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical images (no warning).

    Example
    -------
    >>> import numpy as np
    >>> ref = np.zeros((4, 4)); test = ref + 1.0   # MSE = 1
    >>> round(psnr(ref, test, data_range=255.0), 4)
    48.1308
    """
    ref, test = as_image_pair(ref, test, "psnr", ndims=(2, 3, 4))
    check_finite(ref, "ref", "psnr")
    check_finite(test, "test", "psnr")
    peak = resolve_data_range(ref, data_range, "psnr")
    err = mse(ref, test)
    if err == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / err))
