"""LPIPS (Zhang et al. 2018) with the VGG-16 backbone, built without any download.

``lpips.LPIPS`` is constructed with a randomly initialised trunk (``pnet_rand=True``, so
torchvision never fetches weights) and without its linear layers' weights; then

- the **linear layers** are loaded from the ``vgg.pth`` file that ships inside the ``lpips`` wheel
  (``torch.load(weights_only=True)``);
- the **VGG-16 trunk** is loaded from torchvision's ImageNet state dict
  ``vgg16-397923af.pth``, looked up in the torch hub cache
  (``torch.hub.get_dir()/checkpoints/``) or at an explicit path.

Without those weights :func:`build_lpips` refuses with a message naming the file and where to put
it. A randomly initialised trunk is used only when asked for (``random_backbone=True``); its
figures are labelled ``LPIPS(random VGG)`` (:attr:`PerceptualMetric.label`) everywhere.
"""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from medshared.errors import require
from usenhance.errors import UsenhanceError

__all__ = ["LPIPS_LABEL", "RANDOM_LABEL", "VGG_FILE", "PerceptualMetric", "build_lpips",
           "default_vgg_path"]

VGG_FILE = "vgg16-397923af.pth"
LPIPS_LABEL = "LPIPS"
RANDOM_LABEL = "LPIPS(random VGG)"
_SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))


def default_vgg_path() -> Path:
    """Where torchvision caches the ImageNet VGG-16 weights: ``<torch hub dir>/checkpoints/``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG_FILE


@dataclass
class PerceptualMetric:
    """A frozen LPIPS module and the label its figures must carry."""

    module: nn.Module
    label: str

    @property
    def is_real_lpips(self) -> bool:
        """True only with ImageNet VGG weights (figures may then be called LPIPS)."""
        return self.label == LPIPS_LABEL


class _GrayLPIPS(nn.Module):
    """LPIPS on 1-channel images in [-1, 1]: the channel is repeated to RGB; per-image output."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True) -> _GrayLPIPS:  # always eval: linear layers have dropout
        super().train(False)
        return self

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[1] == 1:
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        return self.inner(a.float(), b.float()).flatten()


def _load_vgg_trunk(net: nn.Module, path: Path) -> None:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure is the file's fault
        raise UsenhanceError(f"--lpips-weights {path}: not a readable torch state dict ({exc})") from None
    mapped = {}
    for k, (lo, hi) in enumerate(_SLICES, start=1):
        for i in range(lo, hi):
            for p in ("weight", "bias"):
                key = f"features.{i}.{p}"
                if key in sd:
                    mapped[f"slice{k}.{i}.{p}"] = sd[key]
    missing = set(net.state_dict()) - set(mapped)
    if missing:
        raise UsenhanceError(
            f"--lpips-weights {path}: not torchvision's VGG-16 ImageNet weights "
            f"(missing {len(missing)} of the trunk's tensors, e.g. {sorted(missing)[0]})"
        )
    net.load_state_dict(mapped)


def build_lpips(weights: str | os.PathLike | None = None, random_backbone: bool = False,
                device: torch.device | str = "cpu") -> PerceptualMetric:
    """Build the frozen LPIPS-VGG metric/loss without downloading anything.

    Parameters
    ----------
    weights : path, optional
        torchvision's ``vgg16-397923af.pth``; default: the torch hub cache
        (:func:`default_vgg_path`).
    random_backbone : bool
        Use a randomly initialised (seeded) VGG trunk instead; the result is labelled
        ``LPIPS(random VGG)``, never LPIPS.
    device : torch.device or str
        Where the module lives.

    Returns
    -------
    PerceptualMetric
        ``module(a, b)`` -> per-image distances ``(N,)`` for ``(N, C, Y, X)`` inputs in [-1, 1];
        all parameters frozen, always in eval mode.

    Raises
    ------
    UsenhanceError
        No VGG weights found (the message says which file to place where), or a bad file.
    """
    lpips = require("lpips", "torch", package="usenhance")
    path = Path(weights) if weights is not None else default_vgg_path()
    if not random_backbone and not path.is_file():
        raise UsenhanceError(
            f"LPIPS needs torchvision's ImageNet VGG-16 weights {VGG_FILE}, not found at {path}; "
            f"place that file there (or pass --lpips-weights PATH); nothing is downloaded. "
            "For tests only, --lpips-random-backbone uses a random trunk (labelled "
            f"{RANDOM_LABEL!r})"
        )
    state = torch.random.get_rng_state()
    torch.manual_seed(0)  # a random trunk is the same one every time
    try:
        with warnings.catch_warnings():  # torchvision's "pretrained is deprecated" notices
            warnings.simplefilter("ignore", UserWarning)
            inner = lpips.LPIPS(pretrained=False, net="vgg", pnet_rand=True, verbose=False)
    finally:
        torch.random.set_rng_state(state)
    lin_path = Path(inspect.getfile(lpips.LPIPS)).parent / "weights" / "v0.1" / "vgg.pth"
    lin = torch.load(lin_path, map_location="cpu", weights_only=True)
    own = {k for k in inner.state_dict() if k.startswith("lin") and not k.startswith("lins.")}
    if set(lin) != own:
        raise UsenhanceError(f"{lin_path}: unexpected LPIPS linear-layer weights in the lpips package")
    inner.load_state_dict(lin, strict=False)
    if not random_backbone:
        _load_vgg_trunk(inner.net, path)
    module = _GrayLPIPS(inner)
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    return PerceptualMetric(module.to(device), RANDOM_LABEL if random_backbone else LPIPS_LABEL)
