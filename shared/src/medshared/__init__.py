"""medshared: metrics and I/O shared by the medical-imaging research tools.

Sub-packages
------------
medshared.metrics   image-quality, overlap and bundle-shape metrics (numpy in, float out)
medshared.io        NIfTI, DICOM, HDF5, streamlines, PNG and checkpoint readers/writers
"""

from importlib.metadata import PackageNotFoundError, version

from medshared.errors import MedsharedError, MissingExtraError

try:
    __version__ = version("medshared")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["MedsharedError", "MissingExtraError", "__version__"]
