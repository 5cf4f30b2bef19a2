"""Training plumbing shared by every deep-learning tool (extra ``medshared[torch]``).

A small library of parts, not a Trainer base class; torch is imported only when a part that
needs it is first used (``import medshared.training`` itself is cheap, so CLIs can build their
flags from configs without paying for torch).

Parts
-----
launch, Runtime              torchrun / DistributedDataParallel, device choice, seeded loaders,
                             all-reduce, barrier, AMP autocast and GradScaler (:mod:`.runtime`)
seed_everything              python / numpy / torch seeds (:mod:`.seeding`)
save_state, load_state       any number of named modules, optimisers, schedulers, a GradScaler
                             plus RNG states, with JSON metadata; never unpickled (:mod:`.state`)
export_model,                inference weights + model config as ``.safetensors`` (:mod:`.state`)
load_model_export
RunFolder                    ``config.json``, ``metrics.jsonl``, ``last``/``best``/``final``
                             checkpoints, resume with config check (:mod:`.run`)
add_config_arguments,        dataclass config <-> command-line flags (:mod:`.config`)
config_from_args, config_to_dict, config_from_dict
optimizer_step, StepOutcome  one optimiser step: AMP scaling, clipping, skip non-finite updates
                             (:mod:`.step`)
progress                     a tqdm bar on the main rank only (:mod:`.progressbar`)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "launch": "runtime",
    "Runtime": "runtime",
    "seed_everything": "seeding",
    "seed_worker": "seeding",
    "save_state": "state",
    "load_state": "state",
    "export_model": "state",
    "load_model_export": "state",
    "ModelExport": "state",
    "unwrap_model": "state",
    "RunFolder": "run",
    "add_config_arguments": "config",
    "config_from_args": "config",
    "config_to_dict": "config",
    "config_from_dict": "config",
    "optimizer_step": "step",
    "StepOutcome": "step",
    "progress": "progressbar",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medshared.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medshared.training.{module}"), name)


def __dir__() -> list[str]:
    return __all__
