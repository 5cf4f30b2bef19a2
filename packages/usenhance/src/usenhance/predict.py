"""Enhancement with a trained generator: any image size, PNG or DICOM, files or folders.

At inference the whole image is used: it is reflect-padded on the bottom/right to the U-Net's
multiple (``2**num_downs``), translated, and cropped back to its own size.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medshared.errors import MedsharedError, MissingExtraError
from usenhance.data import list_images, pad_to_multiple
from usenhance.errors import UsenhanceError
from usenhance.imageio import read_image, write_image

__all__ = ["EnhanceReport", "Enhancer", "enhance_files", "load_enhancer"]


@dataclass
class Enhancer:
    """A loaded L -> H generator, in eval mode.

    Attributes
    ----------
    model : torch.nn.Module
        The U-Net.
    multiple : int
        Inputs are padded to multiples of this.
    meta : dict
        The export's metadata (model name, version, epoch, training config).
    device : torch.device
        Where the model runs.
    """

    model: Any
    multiple: int
    meta: dict
    device: Any

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Enhance ``(Y, X)`` or ``(F, Y, X)`` float images in [0, 1]; same shape out."""
        import torch

        arr = np.asarray(image, dtype=np.float32)
        frames = arr[None] if arr.ndim == 2 else arr
        out = np.empty_like(frames)
        with torch.inference_mode():
            for i, f in enumerate(frames):
                pad = pad_to_multiple(f, self.multiple)
                x = torch.from_numpy(np.ascontiguousarray(pad.image) * 2 - 1)[None, None]
                y = self.model(x.to(self.device)).float().cpu().numpy()[0, 0]
                out[i] = np.clip((y[pad.crop] + 1) / 2, 0, 1)
        return out[0] if arr.ndim == 2 else out


def load_enhancer(path: str | Path, device: str = "cpu") -> Enhancer:
    """Load a ``generator.safetensors`` written by :func:`usenhance.train.train`.

    Raises
    ------
    UsenhanceError
        Not a usenhance generator export (another package, the H -> L generator, a training
        state ``.pt``), or a generator for another channel count than grayscale.
    """
    import torch

    from medshared.training import load_model_export
    from usenhance.models import UNetGenerator
    from usenhance.train import KIND_H2L, KIND_L2H

    p = Path(path)
    if p.suffix == ".pt":
        raise UsenhanceError(
            f"--ckpt {p}: is a training state; pass the run's generator.safetensors export"
        )
    try:
        exp = load_model_export(p, package="usenhance", kinds=(KIND_L2H,), map_location="cpu")
    except MissingExtraError:
        raise
    except MedsharedError as exc:
        msg = str(exc)
        if KIND_H2L in msg:
            msg += " (generator_h2l.safetensors degrades images; use generator.safetensors)"
        raise UsenhanceError(f"--ckpt: {msg}") from None
    cfg = dict(exp.model_config)
    if cfg.get("in_channels") != 1 or cfg.get("out_channels") != 1:
        raise UsenhanceError(
            f"--ckpt {p}: generator for {cfg.get('in_channels')}-channel images; usenhance "
            "enhances grayscale (1-channel) B-mode images"
        )
    try:
        model = UNetGenerator(**cfg)
        model.load_state_dict(exp.state_dict)
    except (TypeError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsenhanceError(f"--ckpt {p}: weights do not fit its model config ({first})") from None
    dev = torch.device(device)
    model.to(dev).eval()
    return Enhancer(model, model.multiple, dict(exp.meta), dev)


@dataclass(frozen=True)
class EnhanceReport:
    """What :func:`enhance_files` did."""

    written: list[Path]
    skipped: list[tuple[Path, str]]
    frames: int
    seconds: float


def _target_name(src: Path, kind: str) -> str:
    return src.name if kind == "png" or src.suffix.lower() in (".dcm", ".dicom") else src.name + ".dcm"


def enhance_files(inp: str | Path, out: str | Path, enhancer: Enhancer,
                  quiet: bool = False) -> EnhanceReport:
    """Enhance one file into a file, or a folder (recursively) into a folder.

    Outputs keep the input's format and bit depth (PNG -> PNG, DICOM -> derived DICOM) and its
    relative path. Unreadable or non-image files are reported by name (warning), skipped and
    counted. A new output folder appears complete or not at all; into an existing folder each
    file is written atomically. An output that would overwrite an input is refused before any
    work.
    """
    from medshared.io.outputs import check_output_path, output_set
    from medshared.training import progress

    t0 = time.perf_counter()
    src, dst = Path(inp), Path(out)
    if src.is_file():
        check_output_path(dst, [src], what="OUT")
        img = read_image(src)
        write_image(dst, enhancer(img.frames), img)
        return EnhanceReport([dst], [], img.frames.shape[0], time.perf_counter() - t0)
    files = list_images(src)
    rels = [f.relative_to(src) for f in files]
    skipped: list[tuple[Path, str]] = []
    written: list[Path] = []
    frames = 0

    def run(base: Path, final: Path, exists: bool) -> None:
        nonlocal frames
        for f, rel in progress(list(zip(files, rels, strict=True)), desc="enhance",
                               enabled=not quiet):
            try:
                img = read_image(f)
            except MissingExtraError:
                raise
            except (UsenhanceError, OSError) as exc:
                skipped.append((f, str(exc)))
                warnings.warn(f"skipped {f}: {exc}", stacklevel=3)
                continue
            name = rel.parent / _target_name(f, img.kind)
            target = base / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if exists:
                check_output_path(target, files, what="OUT")
            write_image(target, enhancer(img.frames), img)
            frames += img.frames.shape[0]
            written.append(final / name)

    if dst.exists():
        if not dst.is_dir():
            raise UsenhanceError(f"OUT {dst}: input {src} is a folder, so OUT must be a folder")
        run(dst, dst, True)
    else:
        with output_set(dst, None, files, what="OUT") as stage:
            run(stage, dst, False)
    if skipped:
        warnings.warn(f"{len(skipped)} of {len(files)} file(s) skipped (unreadable or not images)",
                      stacklevel=2)
    return EnhanceReport(written, skipped, frames, time.perf_counter() - t0)
