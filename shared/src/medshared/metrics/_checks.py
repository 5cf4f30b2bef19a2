"""Input validation shared by the metrics (one clear MedsharedError per problem)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from medshared.errors import MedsharedError

DataRange = float | Literal["dtype", "ref"]


def as_image_pair(
    ref: np.ndarray, test: np.ndarray, name: str, ndims: tuple[int, ...] = (2, 3)
) -> tuple[np.ndarray, np.ndarray]:
    """Check that ``ref`` and ``test`` are numeric arrays of equal shape with an allowed ndim.

    Returns both as arrays (no copy when possible). Raises :class:`MedsharedError` naming
    the metric (``name``) and the offending shapes/dtypes.
    """
    ref = np.asarray(ref)
    test = np.asarray(test)
    for label, arr in (("ref", ref), ("test", test)):
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise MedsharedError(f"{name}: {label} has non-numeric dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise MedsharedError(f"{name}: {label} is complex; pass magnitudes instead")
    if ref.shape != test.shape:
        raise MedsharedError(f"{name}: shapes differ, ref {ref.shape} vs test {test.shape}")
    if ref.ndim not in ndims:
        raise MedsharedError(
            f"{name}: expected a {' or '.join(f'{d}D' for d in ndims)} array, got shape {ref.shape}"
        )
    if ref.size == 0:
        raise MedsharedError(f"{name}: empty arrays (shape {ref.shape})")
    return ref, test


def resolve_data_range(ref: np.ndarray, data_range: DataRange | None, name: str) -> float:
    """Turn a ``data_range`` convention into a positive float.

    ``"dtype"``: full range of ``ref``'s integer dtype (65535 for uint16, 255 for uint8, 65535
    for int16 = 32767 - (-32768)); ``"ref"``: ``ref.max() - ref.min()``; a number is used as is.
    """
    if data_range is None:
        raise MedsharedError(
            f"{name}: data_range is required: pass the peak as a number, 'dtype' (full range of "
            "the integer dtype, e.g. 65535 for 16-bit) or 'ref' (the reference's max - min)"
        )
    if isinstance(data_range, str):
        if data_range == "dtype":
            if ref.dtype == bool:
                return 1.0
            if not np.issubdtype(ref.dtype, np.integer):
                raise MedsharedError(
                    f"{name}: data_range='dtype' needs an integer image, got {ref.dtype}; "
                    "pass a number or data_range='ref'"
                )
            info = np.iinfo(ref.dtype)
            return float(info.max) - float(info.min)
        if data_range == "ref":
            value = float(np.max(ref)) - float(np.min(ref))  # reductions: no temporary
            if not np.isfinite(value) or value <= 0:
                raise MedsharedError(
                    f"{name}: data_range='ref' but the reference is constant or non-finite; "
                    "pass an explicit number"
                )
            return value
        raise MedsharedError(
            f"{name}: data_range must be a number, 'dtype' or 'ref', got {data_range!r}"
        )
    value = float(data_range)
    if not np.isfinite(value) or value <= 0:
        raise MedsharedError(f"{name}: data_range must be positive and finite, got {data_range!r}")
    return value


def check_finite(arr: np.ndarray, label: str, name: str) -> None:
    """Raise if ``arr`` contains NaN or inf (checked slab by slab, no full-size mask)."""
    from medshared.metrics._chunks import all_finite

    if np.issubdtype(arr.dtype, np.floating) and not all_finite(arr):
        raise MedsharedError(f"{name}: {label} contains NaN or inf")


def as_mask(arr: np.ndarray, label: str, name: str) -> np.ndarray:
    """Return a boolean mask, rejecting arrays whose values are not {0, 1}/bool."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise MedsharedError(f"{name}: {label} has non-numeric dtype {arr.dtype}")
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise MedsharedError(
            f"{name}: {label} is not binary (values other than 0 and 1); threshold it first "
            "or use soft_dice for probabilities"
        )
    return arr.astype(bool)
