"""The run folder: resolved config, metrics log and checkpoints of one training run.

Layout (nnU-Net / LightningCLI style: a result can be reproduced from its folder alone)::

    RUN/
      config.json      the resolved configuration (every default filled in)
      metrics.jsonl    one JSON object per logged step or epoch
      last.pt          training state to resume from (``--resume``)
      best.pt          training state with the best value of the named validation metric
      final.pt         training state at the end of the run
      ...              exports, figures (PNG) and summaries the tool adds

Only rank 0 writes; every rank may read (all ranks load ``last.pt`` on resume).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medshared.errors import MedsharedError

CHECKPOINTS = ("last", "best", "final")


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two (nested) configs, sorted."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; null marks a non-finite value
    if hasattr(value, "item") and callable(value.item):
        try:
            return _json_safe(value.item())
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class RunFolder:
    """One training run's folder.

    Parameters
    ----------
    path:
        The folder; created (with parents) on rank 0.
    config:
        The resolved configuration as JSON-able data (e.g. ``config_to_dict(cfg)``).
    resume:
        Continue the run in ``path``: its ``config.json`` must equal ``config`` except for the
        keys in ``allow_changes``; otherwise a :class:`MedsharedError` names the differing keys.
        Without ``resume``, a folder that already holds a run is refused (no silent overwrite).
    is_main:
        Whether this process writes (pass ``runtime.is_main``).
    allow_changes:
        Dotted config keys that may change on resume (e.g. ``("epochs",)`` to extend a run).
    """

    def __init__(
        self,
        path: str | Path,
        config: Mapping[str, Any],
        *,
        resume: bool = False,
        is_main: bool = True,
        allow_changes: tuple[str, ...] = (),
    ) -> None:
        self.path = Path(path)
        self.config = _json_safe(dict(config))
        self.resuming = resume
        self.is_main = is_main
        self.best_name: str | None = None
        self.best_value: float | None = None
        config_file = self.path / "config.json"
        if self.path.exists() and not self.path.is_dir():
            raise MedsharedError(f"{self.path}: run folder path exists and is not a folder")
        if resume:
            if not config_file.is_file():
                raise MedsharedError(f"{self.path}: --resume given but there is no run here (no config.json)")
            try:
                old = json.loads(config_file.read_text())
            except (OSError, ValueError) as exc:
                raise MedsharedError(f"{config_file}: unreadable run config ({exc})") from exc
            diff = [k for k in config_differences(old, self.config) if k not in allow_changes]
            if diff:
                raise MedsharedError(
                    f"{self.path}: cannot resume: the configuration differs from the saved one in "
                    f"{', '.join(diff)} (use the saved settings or start a new run folder)"
                )
            if not self.last.is_file():
                raise MedsharedError(f"{self.path}: --resume given but {self.last.name} does not exist")
        elif is_main and (config_file.exists() or self.last.exists()):
            # Only rank 0 checks: under DDP it may already have created the folder by the time
            # another rank gets here.
            raise MedsharedError(
                f"{self.path}: already holds a training run; pass --resume to continue it or "
                "choose another output folder"
            )
        if is_main:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MedsharedError(f"{self.path}: cannot create run folder ({exc.strerror})") from exc
            self.write_json("config.json", self.config)

    # -- paths ----------------------------------------------------------------------------
    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def final(self) -> Path:
        return self.path / "final.pt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def file(self, name: str) -> Path:
        """Path of another output inside the run folder (figures, exports, summaries)."""
        return self.path / name

    # -- writing --------------------------------------------------------------------------
    def write_json(self, name: str, data: Any) -> Path:
        """Write ``data`` as JSON (NaN/inf become null) to ``name`` in the folder, atomically."""
        from medshared.io.atomic import atomic_write_text

        target = self.path / name
        if self.is_main:
            atomic_write_text(target, json.dumps(_json_safe(data), indent=2, allow_nan=False) + "\n")
        return target

    def log(self, step: int | None = None, **metrics: Any) -> None:
        """Append one JSON line ``{"step": step, **metrics}`` to ``metrics.jsonl`` (rank 0)."""
        if not self.is_main:
            return
        record = {"step": step, **metrics} if step is not None else dict(metrics)
        line = json.dumps(_json_safe(record), allow_nan=False)
        with open(self.metrics_file, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every record of ``metrics.jsonl`` (an empty list if none was logged)."""
        if not self.metrics_file.is_file():
            return []
        return [json.loads(x) for x in self.metrics_file.read_text().splitlines() if x.strip()]

    def save(self, which: str, objects: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
        """Save a training state as ``last``, ``best`` or ``final`` (rank 0); returns its path.

        The best-metric bookkeeping travels in the metadata (``run_best``), so a resumed run
        keeps comparing against the right value.
        """
        from medshared.training.state import save_state

        if which not in CHECKPOINTS:
            raise MedsharedError(f"checkpoint name must be one of {CHECKPOINTS}, got {which!r}")
        target = self.path / f"{which}.pt"
        if self.is_main:
            record = {**dict(meta or {}), "config": self.config,
                      "run_best": {"name": self.best_name, "value": self.best_value}}
            save_state(target, objects, _json_safe(record))
        return target

    def update_best(self, name: str, value: float, mode: str = "min") -> bool:
        """True (and remember ``value``) if it improves on the best ``name`` so far."""
        if mode not in ("min", "max"):
            raise MedsharedError(f"update_best mode must be 'min' or 'max', got {mode!r}")
        value = float(value)
        if not math.isfinite(value):
            return False
        better = (
            self.best_value is None
            or (mode == "min" and value < self.best_value)
            or (mode == "max" and value > self.best_value)
        )
        if better:
            self.best_name, self.best_value = name, value
        return better

    # -- resuming -------------------------------------------------------------------------
    def resume(self, objects: Mapping[str, Any], map_location: Any = "cpu") -> dict[str, Any] | None:
        """Load ``last`` into ``objects`` when resuming (else ``None``); returns its metadata.

        Metric lines logged after that checkpoint (by the interrupted run) are dropped, so the
        log of a resumed run equals that of an uninterrupted one.
        """
        from medshared.training.state import load_state

        if not self.resuming:
            return None
        meta = load_state(self.last, objects, map_location=map_location)
        best = meta.get("run_best") or {}
        self.best_name, self.best_value = best.get("name"), best.get("value")
        step = meta.get("step")
        if self.is_main and step is not None and self.metrics_file.is_file():
            kept = [r for r in self.read_metrics() if r.get("step") is None or r["step"] <= step]
            from medshared.io.atomic import atomic_write_text

            atomic_write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in kept))
        return meta
