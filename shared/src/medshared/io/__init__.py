"""Readers and writers for the tools' file formats; every writer is atomic.

One image convention
--------------------
Every volume reader returns the same record, :class:`Image`: ``data`` in ``(X, Y, Z[, T])``
order, ``affine`` (4, 4) voxel -> RAS+ mm, ``spacing`` (mm), ``dt`` (s, series only), ``path``,
``header``/``meta`` for format specifics. DICOM is converted to it on reading (LPS -> RAS,
``(slice, row, column)`` -> ``(column, row, slice)``). :func:`read_image` dispatches on the path
(``.nii``/``.nii.gz``, a DICOM file, a DICOM folder); :func:`write_image` writes NIfTI.

Formats (one module each)
-------------------------
image        :class:`Image`, :func:`read_image`, :func:`write_image`
nifti        ``.nii``/``.nii.gz``: :func:`read_nifti`, :func:`write_nifti` (nibabel)
dicom        series folder (3D or 4D) or one (multi-frame) file: :func:`read_dicom`,
             :func:`read_dicom_series` (pydicom, extra ``dicom``)
hdf5         ``.h5``/``.hdf5``: :func:`open_hdf5` (lazy, sliceable), :func:`read_hdf5`,
             :func:`write_hdf5` (h5py)
streamlines  ``.trk``/``.tck``/``.trx``: :func:`read_streamlines`, :func:`write_streamlines`
             (nibabel; ``.trx`` needs trx-python, extra ``trx``), with per-point and
             per-streamline data
png          8/16-bit grayscale ``.png``: :func:`read_png`, :func:`write_png` (Pillow, extra ``png``)
checkpoint   ``.safetensors`` + JSON metadata: :func:`save_checkpoint`, :func:`load_checkpoint`
             (torch + safetensors, extra ``torch``)
atomic       :func:`atomic_path`, :func:`atomic_write_bytes`, :func:`atomic_write_text`
outputs      :func:`check_output_path`, :func:`check_output_folder`, :func:`output_set`: refuse
             unsafe outputs before any work; write a multi-file result as a whole
limits       :func:`check_allocation`, :func:`available_memory`: refuse what a header claims
             before allocating it

Every reader raises :class:`~medshared.errors.MedsharedError` naming the file: a missing file is a
:class:`~medshared.errors.MissingFileError` (also a ``FileNotFoundError``), a permission problem a
:class:`~medshared.errors.FilePermissionError`, a claim larger than the memory an
:class:`~medshared.errors.AllocationError`; also for a wrong extension, a corrupt/truncated file,
a wrong dimensionality (``ndim=``) and NaN/inf when ``allow_nonfinite=False``. Optional libraries
are imported only when their format is used.
"""

import importlib
from typing import Any

# Lazy: a name's module (and its library: nibabel, pydicom, h5py, ...) is imported on first use,
# so a tool that only needs the atomic writers does not pay for every format at start-up.
_EXPORTS = {
    "available_memory": "_limits",
    "check_allocation": "_limits",
    "atomic_path": "atomic",
    "atomic_write_bytes": "atomic",
    "atomic_write_text": "atomic",
    "METADATA_KEY": "checkpoint",
    "Checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "DicomSeries": "dicom",
    "read_dicom": "dicom",
    "read_dicom_series": "dicom",
    "Hdf5Content": "hdf5",
    "read_hdf5": "hdf5",
    "write_hdf5": "hdf5",
    "Image": "image",
    "read_image": "image",
    "write_image": "image",
    "NiftiImage": "nifti",
    "read_nifti": "nifti",
    "write_nifti": "nifti",
    "check_output_folder": "outputs",
    "check_output_path": "outputs",
    "output_set": "outputs",
    "read_png": "png",
    "write_png": "png",
    "Tractogram": "streamlines",
    "read_streamlines": "streamlines",
    "write_streamlines": "streamlines",
}

__all__ = [
    "METADATA_KEY",
    "Checkpoint",
    "DicomSeries",
    "Hdf5Content",
    "Image",
    "NiftiImage",
    "Tractogram",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "available_memory",
    "check_allocation",
    "check_output_folder",
    "check_output_path",
    "load_checkpoint",
    "output_set",
    "read_dicom",
    "read_dicom_series",
    "read_hdf5",
    "read_image",
    "read_nifti",
    "read_png",
    "read_streamlines",
    "save_checkpoint",
    "write_hdf5",
    "write_image",
    "write_nifti",
    "write_png",
    "write_streamlines",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medshared.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"medshared.io.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
