"""Model checkpoints: safetensors weights + a JSON metadata record, never unpickled.

File layout: a standard ``.safetensors`` file whose header metadata holds one entry,
``"medshared.metadata"``, the JSON text of the caller's metadata dict (package, version,
model_config, step, seed, ...). Loading uses ``safetensors.torch.load_file`` only, so a checkpoint
cannot execute code. torch and safetensors come from the ``torch`` extra and are imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medshared.errors import MedsharedError, require
from medshared.io._checks import (
    PathLike,
    check_input_file,
    check_suffix,
    reraise_as_corrupt,
    reraise_write_errors,
)
from medshared.io.atomic import atomic_path

__all__ = ["METADATA_KEY", "Checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_SUFFIXES = (".safetensors",)
METADATA_KEY = "medshared.metadata"
_KIND = "checkpoint"


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    state_dict : dict of str to torch.Tensor
        Tensors by name, on the requested device, dtypes and shapes as saved.
    metadata : dict
        The JSON metadata record as saved (JSON types: dict, list, str, int, float, bool, None).
    path : Path or None
        File read.
    """

    state_dict: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _non_string_key(obj: Any) -> Any:
    """Return the first dict key that is not a str, searching nested dicts/lists (else None)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if not isinstance(key, str):
                    return key
                stack.append(value)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _torch():
    torch = require("torch", "torch")
    require("safetensors.torch", "torch")
    return torch


def save_checkpoint(
    path: PathLike, state_dict: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> None:
    """Save tensors and a JSON-able metadata dict to a ``.safetensors`` file, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target ``.safetensors`` file (replaced if present; the folder must exist).
    state_dict : mapping of str to torch.Tensor
        E.g. ``model.state_dict()``; tensors are detached and copied to CPU. Tensors that share
        memory (tied weights) are stored as separate copies.
    metadata : mapping, optional
        JSON-serialisable record, e.g. ``{"package": "flowsr", "version": "0.1.0",
        "model_config": {...}, "step": 1200, "seed": 0}``. NaN/inf floats are not allowed.

    Raises
    ------
    MedsharedError
        Wrong extension, non-tensor values or non-string keys, metadata that is not JSON-able,
        or a write failure (the target is then left untouched, no temporary file remains).
    """
    torch = _torch()
    from safetensors.torch import save_file

    p = check_suffix(path, CHECKPOINT_SUFFIXES, _KIND)
    meta = dict(metadata or {})
    bad_key = _non_string_key(meta)
    if bad_key is not None:
        raise MedsharedError(
            f"{_KIND} file {p}: metadata is not JSON-serialisable as is: dict key {bad_key!r} "
            "is not a str (JSON would silently turn it into a string)"
        )
    try:
        meta_json = json.dumps(meta, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise MedsharedError(
            f"{_KIND} file {p}: metadata is not JSON-serialisable ({exc}); store plain "
            "dicts/lists/str/int/float/bool/None"
        ) from exc
    tensors: dict[str, Any] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise MedsharedError(
                f"{_KIND} file {p}: state_dict must map str to torch.Tensor "
                f"(got {type(key).__name__} -> {type(value).__name__})"
            )
        t = value.detach().to("cpu").contiguous()
        ident = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if ident in seen and t.numel() > 0:
            t = t.clone()
        else:
            seen.add(ident)
        tensors[key] = t
    with reraise_write_errors(p, _KIND), atomic_path(p) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={METADATA_KEY: meta_json})
        except (ValueError, TypeError, RuntimeError) as exc:
            raise MedsharedError(f"{_KIND} file {p}: cannot save ({exc})") from exc


def load_checkpoint(
    path: PathLike, map_location: Any = "cpu", *, allow_nonfinite: bool = True
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint` without unpickling anything.

    Parameters
    ----------
    path : str or PathLike
        ``.safetensors`` file.
    map_location : str or torch.device
        Device for the tensors, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
    allow_nonfinite : bool
        If False, NaN or +-inf in any floating tensor raises.

    Returns
    -------
    Checkpoint
        ``state_dict`` (name -> tensor), ``metadata`` (dict), ``path``.

    Raises
    ------
    MedsharedError
        Naming the file, for: wrong extension, missing file, corrupt/truncated file, a
        safetensors file without medshared metadata, non-finite tensors when
        ``allow_nonfinite=False``.
    """
    torch = _torch()
    import safetensors
    from safetensors.torch import load_file

    p = check_input_file(path, CHECKPOINT_SUFFIXES, _KIND)
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError) as exc:
        raise MedsharedError(f"{_KIND} file {p}: bad map_location {map_location!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MedsharedError(
            f"{_KIND} file {p}: map_location={str(device)!r} but CUDA is not available"
        )
    errors: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, EOFError)
    if hasattr(safetensors, "SafetensorError"):
        errors = (*errors, safetensors.SafetensorError)
    with reraise_as_corrupt(p, _KIND, errors):
        with safetensors.safe_open(str(p), framework="pt") as fh:
            header_meta = fh.metadata() or {}
        state_dict = load_file(str(p), device=str(device))
    if METADATA_KEY not in header_meta:
        raise MedsharedError(
            f"{_KIND} file {p}: no {METADATA_KEY!r} entry in the safetensors header; "
            "not written by medshared.io.save_checkpoint"
        )
    try:
        metadata = json.loads(header_meta[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise MedsharedError(f"{_KIND} file {p}: metadata is not valid JSON ({exc})") from exc
    if not allow_nonfinite:
        for name, t in state_dict.items():
            if t.is_floating_point() or t.is_complex():
                if not bool(torch.isfinite(t).all()):
                    raise MedsharedError(
                        f"{_KIND} file {p}: tensor {name!r} holds NaN/inf; "
                        "pass allow_nonfinite=True to load it anyway"
                    )
    return Checkpoint(state_dict=state_dict, metadata=metadata, path=p)
