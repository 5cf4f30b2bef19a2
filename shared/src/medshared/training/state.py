"""Training state: any number of named objects + RNG states + JSON metadata, never unpickled.

A *training state* (``.pt``) holds the ``state_dict()`` of every named object a run needs to
continue exactly (modules, optimisers, LR schedulers, a GradScaler, ...), the python / numpy /
torch CPU / torch CUDA RNG states, and a JSON metadata record (package, version, config, step or
epoch, seed). It is written atomically with ``torch.save`` and read back with
``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers: a file that
would need arbitrary unpickling is refused with a clear error (as in Lightning Fabric's
``save``/``load`` of a dict of objects, but never trusting pickles).

An *export* (``.safetensors``) is what inference commands load: the model's weights plus its
constructor config, through :func:`medshared.io.save_checkpoint` (no pickle at all).

Example
-------
>>> import torch, tempfile, pathlib
>>> net = torch.nn.Linear(2, 1); opt = torch.optim.SGD(net.parameters(), lr=0.1)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "last.pt"
>>> save_state(path, {"model": net, "optimizer": opt}, {"package": "demo", "step": 3})
>>> load_state(path, {"model": net, "optimizer": opt})["step"]
3
"""

from __future__ import annotations

import json
import pickle
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medshared.errors import MedsharedError
from medshared.training._torch import torch as _torch

FORMAT = "medshared.training-state/1"


def unwrap_model(model: Any) -> Any:
    """Strip DistributedDataParallel/DataParallel (``.module``) and torch.compile (``._orig_mod``)."""
    torch = _torch()
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel | torch.nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model, torch.nn.Module):
            model = model._orig_mod
        else:
            return model


# -- RNG states ---------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The python, numpy (legacy global), torch CPU and torch CUDA RNG states, as plain data."""
    torch = _torch()
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the states captured by :func:`rng_state` (CUDA only when present in both)."""
    torch = _torch()
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npd = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": npd["bit_generator"],
            "state": {"key": npd["key"].numpy().astype(np.uint32), "pos": int(npd["pos"])},
            "has_gauss": int(npd["has_gauss"]),
            "gauss": float(npd["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


# -- save / load --------------------------------------------------------------------------
def _state_dict(name: str, obj: Any) -> Any:
    obj = unwrap_model(obj)
    if not hasattr(obj, "state_dict"):
        raise MedsharedError(f"training state: object {name!r} ({type(obj).__name__}) has no state_dict()")
    return obj.state_dict()


def save_state(
    path: str | Path,
    objects: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
    *,
    rng: bool = True,
) -> None:
    """Write the state of ``objects`` (name -> object with ``state_dict``) and ``meta`` atomically.

    Parameters
    ----------
    path:
        Output file (conventionally ``.pt``); replaced atomically.
    objects:
        Named modules / optimisers / schedulers / GradScaler / anything with ``state_dict``.
        DDP and ``torch.compile`` wrappers are unwrapped.
    meta:
        JSON-serialisable metadata (package, version, config, step/epoch, seed, ...).
    rng:
        Also save the RNG states (restored by :func:`load_state`), default True.
    """
    torch = _torch()
    from medshared.io.atomic import atomic_path

    try:
        meta_json = json.dumps(dict(meta or {}), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MedsharedError(f"{path}: training-state metadata is not plain JSON ({exc})") from exc
    payload = {
        "format": FORMAT,
        "meta": meta_json,
        "objects": {str(n): _state_dict(n, o) for n, o in objects.items()},
    }
    if rng:
        payload["rng"] = rng_state()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_state(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a training-state file safely (``weights_only=True``); returns the raw payload."""
    torch = _torch()
    p = Path(path)
    if not p.is_file():
        if p.exists():
            raise MedsharedError(f"{p}: not a regular file (expected a training state .pt)")
        raise MedsharedError(f"{p}: no such training-state file")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise MedsharedError(
            f"{p}: refused: loading it would need unpickling arbitrary Python objects "
            "(only tensors and plain containers are accepted); it is not a medshared training state"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise MedsharedError(f"{p}: not a readable training state (corrupt or truncated: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MedsharedError(f"{p}: not a medshared training state (format tag missing)")
    return payload


def load_state(
    path: str | Path,
    objects: Mapping[str, Any],
    *,
    map_location: Any = "cpu",
    restore_rng: bool = True,
    strict: bool = True,
) -> dict[str, Any]:
    """Load a state written by :func:`save_state` into ``objects``; returns its metadata.

    Every name in ``objects`` must be in the file, and (``strict``) the file must hold no other
    objects; module state dicts must match exactly. Errors name the file and the object.
    """
    p = Path(path)
    payload = read_state(p, map_location)
    stored = payload["objects"]
    missing = sorted(set(objects) - set(stored))
    if missing:
        raise MedsharedError(f"{p}: holds no state for {', '.join(missing)} (has {', '.join(sorted(stored))})")
    extra = sorted(set(stored) - set(objects))
    if strict and extra:
        raise MedsharedError(f"{p}: holds state for {', '.join(extra)} that this run does not use")
    for name, obj in objects.items():
        target = unwrap_model(obj)
        try:
            target.load_state_dict(stored[name])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MedsharedError(f"{p}: state of {name!r} does not fit this run ({first})") from exc
    if restore_rng and "rng" in payload:
        set_rng_state(payload["rng"])
    return json.loads(payload["meta"])


# -- inference export ---------------------------------------------------------------------
@dataclass(frozen=True)
class ModelExport:
    """An inference export: weights, the model's constructor config and the metadata record."""

    state_dict: dict[str, Any]
    model_config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def kind(self) -> str:
        """The model type name the export was saved with (e.g. ``"vqdiff"``)."""
        return str(self.meta.get("kind", ""))


def export_model(
    path: str | Path,
    model: Any,
    *,
    package: str,
    version: str,
    kind: str,
    model_config: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model``'s inference weights + its config to ``path`` (``.safetensors``), atomically.

    ``kind`` names the model type (checked by :func:`load_model_export`); ``model_config`` holds
    what is needed to rebuild the module (its constructor arguments); ``extra`` any further JSON
    metadata (e.g. normalisation constants, training step, metrics).
    """
    from medshared.io.checkpoint import save_checkpoint

    meta = {
        "format": "medshared.model-export/1",
        "package": package,
        "version": version,
        "kind": kind,
        "model_config": dict(model_config),
        **dict(extra or {}),
    }
    state = {k: v.detach().cpu() for k, v in unwrap_model(model).state_dict().items()}
    save_checkpoint(path, state, meta)


def load_model_export(
    path: str | Path,
    *,
    package: str,
    kinds: str | Sequence[str] | None = None,
    map_location: Any = "cpu",
) -> ModelExport:
    """Read an export written by :func:`export_model`; refuse another package's or kind's file."""
    from medshared.io.checkpoint import load_checkpoint

    p = Path(path)
    ckpt = load_checkpoint(p, map_location=map_location)
    meta = dict(ckpt.metadata)
    if meta.get("format") != "medshared.model-export/1":
        raise MedsharedError(f"{p}: not a model export (no medshared.model-export metadata)")
    if meta.get("package") != package:
        raise MedsharedError(
            f"{p}: is a {meta.get('package')!r} model, not a {package} model"
        )
    if kinds is not None:
        allowed = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        if meta.get("kind") not in allowed:
            raise MedsharedError(
                f"{p}: holds a {meta.get('kind')!r} model; this command needs {' or '.join(allowed)}"
            )
    config = meta.get("model_config")
    if not isinstance(config, dict):
        raise MedsharedError(f"{p}: model export has no model_config")
    return ModelExport(dict(ckpt.state_dict), config, meta, p)
