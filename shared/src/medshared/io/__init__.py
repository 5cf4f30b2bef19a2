"""Readers and writers for the tools' file formats; every writer is atomic.

Formats (one module each)
-------------------------
nifti        ``.nii``/``.nii.gz``: :func:`read_nifti`, :func:`write_nifti` (nibabel)
dicom        series folder: :func:`read_dicom_series` (pydicom, extra ``dicom``)
hdf5         ``.h5``/``.hdf5``: :func:`read_hdf5`, :func:`write_hdf5` (h5py)
streamlines  ``.trk``/``.tck``/``.trx``: :func:`read_streamlines`, :func:`write_streamlines`
             (nibabel; ``.trx`` needs trx-python, extra ``trx``)
png          8/16-bit grayscale ``.png``: :func:`read_png`, :func:`write_png` (Pillow, extra ``png``)
checkpoint   ``.safetensors`` + JSON metadata: :func:`save_checkpoint`, :func:`load_checkpoint`
             (torch + safetensors, extra ``torch``)
atomic       :func:`atomic_path`, :func:`atomic_write_bytes`, :func:`atomic_write_text`

Every reader raises :class:`~medshared.errors.MedsharedError` naming the file for a missing file,
a wrong extension, a corrupt/truncated file, a wrong dimensionality (``ndim=``) and NaN/inf when
``allow_nonfinite=False``. Optional libraries are imported only when their format is used.
"""

from medshared.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from medshared.io.checkpoint import METADATA_KEY, Checkpoint, load_checkpoint, save_checkpoint
from medshared.io.dicom import DicomSeries, read_dicom_series
from medshared.io.hdf5 import Hdf5Content, read_hdf5, write_hdf5
from medshared.io.nifti import NiftiImage, read_nifti, write_nifti
from medshared.io.png import read_png, write_png
from medshared.io.streamlines import Tractogram, read_streamlines, write_streamlines

__all__ = [
    "METADATA_KEY",
    "Checkpoint",
    "DicomSeries",
    "Hdf5Content",
    "NiftiImage",
    "Tractogram",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_checkpoint",
    "read_dicom_series",
    "read_hdf5",
    "read_nifti",
    "read_png",
    "read_streamlines",
    "save_checkpoint",
    "write_hdf5",
    "write_nifti",
    "write_png",
    "write_streamlines",
]
