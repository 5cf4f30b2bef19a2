"""perfdecon: perfusion maps by differentiable SVD deconvolution.

Public entry points live in submodules (``perfdecon.deconvolution``, ``perfdecon.maps``,
``perfdecon.phantom``, ``perfdecon.aif``, ``perfdecon.preprocess``); importing the package itself
is cheap (no torch import).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
