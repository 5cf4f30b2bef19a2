"""``medshared compare``: every intensity metric of two images, with bounded memory.

:func:`compare_files` reads two ``.nii``/``.nii.gz``/``.npy`` images and :func:`compare_arrays`
computes PSNR, SSIM, LNCC and MSE of them. All four metrics stream over slabs of planes
(:mod:`medshared.metrics`), so a 512^3 int16 pair needs the two arrays plus a few hundred MiB;
``.npy`` files are memory-mapped, never copied whole. Every message names the user's file or
option.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medshared.errors import MedsharedError
from medshared.io._checks import check_input_file
from medshared.metrics._chunks import all_finite

__all__ = ["Comparison", "compare_arrays", "compare_files", "parse_data_range", "read_image"]

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".npy")
LNCC_WINDOW = 9


@dataclass(frozen=True)
class Comparison:
    """The metrics of a test image against a reference.

    Attributes
    ----------
    psnr_db : float
        PSNR in dB over the whole image (``inf`` when identical).
    ssim : float
        Mean SSIM (the mean over the volumes of a 4D series).
    lncc : float
        Mean LNCC, 9-voxel window (the mean over the volumes of a 4D series).
    mse : float
        Mean squared error, in squared image units.
    shape : tuple of int
        Shape after dropping length-1 axes.
    data_range : float
        The peak used for PSNR/SSIM, in image units.
    volumes : int
        Number of 3D volumes averaged for SSIM/LNCC (1 unless 4D).
    """

    psnr_db: float
    ssim: float
    lncc: float
    mse: float
    shape: tuple[int, ...]
    data_range: float
    volumes: int = 1

    def to_json(self) -> dict:
        """JSON-ready dict; an infinite PSNR (identical images) becomes ``null``."""
        return {
            "psnr_db": self.psnr_db if math.isfinite(self.psnr_db) else None,
            "identical": self.mse == 0.0,
            "ssim": self.ssim,
            "lncc": self.lncc,
            "lncc_window_vox": LNCC_WINDOW,
            "mse": self.mse,
            "shape": list(self.shape),
            "data_range": self.data_range,
            "volumes": self.volumes,
        }


# The largest explicit ``--data-range`` (image units): about float32's largest value (3.4e38);
# a larger peak is no image's range and only pushes PSNR to meaningless values.
MAX_DATA_RANGE = 1e38


def parse_data_range(text: str) -> str | float:
    """``"dtype"``, ``"ref"`` or a number in (0, :data:`MAX_DATA_RANGE`] (``--data-range``)."""
    if text in ("dtype", "ref"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= MAX_DATA_RANGE:
        raise MedsharedError(
            f"--data-range must be 'dtype', 'ref' or a number in (0, {MAX_DATA_RANGE:g}], "
            f"got {text!r}"
        )
    return value


def _read_npy(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` array after checking its header against the file size."""
    size = path.stat().st_size
    if size == 0:
        raise MedsharedError(f".npy file {path}: empty file (0 bytes), not a .npy array")
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                shape, fortran, dtype = np.lib.format._read_array_header(fh, version)
            offset = fh.tell()
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise MedsharedError(
            f".npy file {path}: not a .npy array (no valid .npy header: {exc})"
        ) from None
    if dtype.hasobject:
        raise MedsharedError(
            f".npy file {path}: holds Python objects, which would have to be unpickled; "
            "refusing (save a numeric array instead)"
        )
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or dtype.fields:
        raise MedsharedError(f".npy file {path}: dtype {dtype} is not a numeric image")
    n = math.prod(int(s) for s in shape)
    if n == 0:
        raise MedsharedError(f".npy file {path}: empty array (shape {tuple(shape)})")
    needed = offset + n * dtype.itemsize
    if size < needed:
        raise MedsharedError(
            f".npy file {path}: truncated or corrupt: the header declares shape {tuple(shape)} "
            f"{dtype} ({needed} bytes with the header) but the file holds {size} bytes"
        )
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise MedsharedError(f".npy file {path}: cannot read ({exc})") from None


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The voxel array of a ``.nii``/``.nii.gz`` (``(X, Y, Z[, T])``) or ``.npy`` file.

    The dtype on disk is kept (no float64 copy). A FIFO, socket, device or folder is refused
    before it is opened; a ``.npy`` header is checked against the file size and the array is
    memory-mapped.
    """
    p = check_input_file(path, IMAGE_SUFFIXES, "image")
    if p.name.lower().endswith(".npy"):
        return _read_npy(p)
    from medshared.io import read_nifti

    return np.asarray(read_nifti(p).data)


def _peak(ref: np.ndarray, data_range: str | float, ref_name: str) -> float:
    if not isinstance(data_range, str):
        return float(data_range)
    if data_range == "dtype":
        if ref.dtype == np.bool_:
            return 1.0
        if not np.issubdtype(ref.dtype, np.integer):
            raise MedsharedError(
                f"--data-range dtype needs an integer image, but {ref_name} holds {ref.dtype}; "
                "pass --data-range ref or a number"
            )
        info = np.iinfo(ref.dtype)
        return float(info.max) - float(info.min)
    lo, hi = float(np.min(ref)), float(np.max(ref))
    if not hi > lo:
        raise MedsharedError(
            f"{ref_name} is constant ({lo:g}), so --data-range ref (max - min) is 0; "
            "pass --data-range NUMBER or dtype"
        )
    return hi - lo


def compare_arrays(
    ref: np.ndarray,
    test: np.ndarray,
    data_range: str | float = "ref",
    *,
    ref_name: str = "the reference",
    test_name: str = "the test image",
    chunk: int | None = None,
) -> Comparison:
    """PSNR, SSIM, LNCC and MSE of ``test`` against ``ref`` (same shape, 2D to 4D).

    Parameters
    ----------
    ref, test : np.ndarray
        Images of equal shape after dropping length-1 axes: 2D, 3D ``(X, Y, Z)`` or a 4D series
        ``(X, Y, Z, T)`` (SSIM and LNCC are then averaged over the T volumes; PSNR and MSE use
        the whole series). Any numeric dtype; memory-mapped arrays are read slab by slab.
    data_range : {"ref", "dtype"} or float
        Peak for PSNR/SSIM: the reference's max - min, the integer dtype's full range, or a
        number (image units).
    ref_name, test_name : str
        How the images are named in messages (the file names).
    chunk : int, optional
        Planes per slab for the metrics (default automatic, about 4 Mi voxels).
    """
    from medshared.metrics import lncc, mse, psnr, ssim

    ref = np.squeeze(ref)
    test = np.squeeze(test)
    if ref.shape != test.shape:
        raise MedsharedError(
            f"{test_name}: shape {test.shape} differs from {ref_name} shape {ref.shape}"
        )
    if ref.ndim not in (2, 3, 4):
        raise MedsharedError(
            f"{ref_name}: expected a 2D, 3D or 4D image, got shape {ref.shape}"
        )
    for name, arr in ((ref_name, ref), (test_name, test)):
        if np.iscomplexobj(arr):
            raise MedsharedError(f"{name}: complex values; compare magnitudes instead")
        if not all_finite(arr):
            raise MedsharedError(f"{name}: contains NaN or infinite values; metrics undefined")
    peak = _peak(ref, data_range, ref_name)
    if ref.ndim == 4:
        vols = range(ref.shape[3])
        s_val = float(np.mean([ssim(ref[..., t], test[..., t], peak, chunk=chunk) for t in vols]))
        l_val = float(
            np.mean([lncc(ref[..., t], test[..., t], LNCC_WINDOW, chunk=chunk) for t in vols])
        )
        n_vol = ref.shape[3]
    else:
        s_val = ssim(ref, test, peak, chunk=chunk)
        l_val = lncc(ref, test, LNCC_WINDOW, chunk=chunk)
        n_vol = 1
    err = mse(ref, test, chunk=chunk)
    p_val = psnr(ref, test, data_range=peak, chunk=chunk) if err > 0 else math.inf
    return Comparison(p_val, s_val, l_val, err, tuple(ref.shape), peak, n_vol)


def compare_files(
    ref_path: str | os.PathLike[str],
    test_path: str | os.PathLike[str],
    data_range: str | float = "ref",
) -> Comparison:
    """Read two images (:func:`read_image`) and :func:`compare_arrays` them."""
    ref = read_image(ref_path)
    test = read_image(test_path)
    return compare_arrays(
        ref, test, data_range, ref_name=os.fspath(ref_path), test_name=os.fspath(test_path)
    )
