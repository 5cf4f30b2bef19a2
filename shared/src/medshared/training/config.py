"""Typed configs: a dataclass becomes command-line flags with the same names, and back.

A tool declares every default once, in a dataclass::

    @dataclass(frozen=True)
    class TrainConfig:
        lr: float = field(default=3e-4, metadata={"help": "Adam learning rate", "min": 0.0})
        batch_size: int = field(default=4, metadata={"help": "images per step", "min": 1})
        amp: bool = field(default=True, metadata={"help": "mixed precision on CUDA"})
        model: Literal["unet", "resnet"] = "unet"

``add_config_arguments(parser, TrainConfig)`` adds ``--lr``, ``--batch-size``, ``--amp/--no-amp``
and ``--model {unet,resnet}``, each help line ending with its default; values are validated at
parse time (finite numbers, ``min``/``max`` bounds from the metadata, choices).
``config_from_args(TrainConfig, args)`` builds the dataclass again. A field whose type is another
dataclass becomes a group of flags prefixed with its name (``--model-hidden``); ``exclude`` skips
fields that a command sets itself. This module does not import torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from medshared.errors import MedsharedError


def _flag(prefix: str, name: str) -> str:
    return "--" + (prefix + name).replace("_", "-")


def _dest(prefix: str, name: str) -> str:
    return (prefix + name).replace("-", "_")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _scalar_parser(tp: Any, flag: str, meta: Mapping[str, Any], optional: bool):
    lo, hi = meta.get("min"), meta.get("max")

    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null", ""):
            return None
        try:
            if tp is bool:
                low = text.lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value: Any = low in ("true", "1", "yes")
            else:
                value = tp(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(
                f"{flag} expects {getattr(tp, '__name__', tp)}, got {text!r}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{flag} must be a finite number, got {text!r}")
        if lo is not None and value < lo:
            raise argparse.ArgumentTypeError(f"{flag} must be >= {lo}, got {text!r}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{flag} must be <= {hi}, got {text!r}")
        return value

    parse.__name__ = getattr(tp, "__name__", "value")
    return parse


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    prefix: str = "",
) -> None:
    """Add one flag per field of dataclass ``cls`` to ``parser`` (see the module docstring)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls, include_extras=False)
    skip = set(exclude)
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip or (prefix + f.name) in skip:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            add_config_arguments(parser, tp, exclude=skip, prefix=f"{prefix}{f.name}_")
            continue
        default = _default(f)
        flag = f.metadata.get("flag") or _flag(prefix, f.name)
        text = f.metadata.get("help", "")
        shown = "none" if default is None else (
            ",".join(map(str, default)) if isinstance(default, tuple | list) else default
        )
        help_ = f"{text} (default: {shown})".strip()
        dest = _dest(prefix, f.name)
        if tp is bool and not optional:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                                default=default, help=help_)
            continue
        origin = get_origin(tp)
        if origin is Literal:
            choices = list(get_args(tp))
            kind = type(choices[0])
            parser.add_argument(flag, dest=dest, default=default, choices=choices,
                                type=_scalar_parser(kind, flag, {}, optional), help=help_)
        elif origin in (tuple, list):
            args = get_args(tp)
            item = args[0] if args else str
            nargs: Any = "+" if (len(args) == 2 and args[1] is Ellipsis) or origin is list else len(args)
            parser.add_argument(flag, dest=dest, default=default, nargs=nargs,
                                type=_scalar_parser(item, flag, f.metadata, False), help=help_,
                                metavar=item.__name__.upper())
        elif tp in (int, float, str, Path):
            choices = f.metadata.get("choices")
            parser.add_argument(flag, dest=dest, default=default, choices=choices,
                                type=_scalar_parser(tp, flag, f.metadata, optional), help=help_)
        else:
            raise TypeError(f"config field {cls.__name__}.{f.name}: unsupported type {tp!r}")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def config_from_args(cls: type, args: argparse.Namespace, *, prefix: str = "", **overrides: Any) -> Any:
    """Build dataclass ``cls`` from parsed flags (fields without a flag keep their default)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in overrides:
            values[f.name] = overrides[f.name]
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            values[f.name] = config_from_args(tp, args, prefix=f"{prefix}{f.name}_")
            continue
        dest = _dest(prefix, f.name)
        if hasattr(args, dest):
            value = getattr(args, dest)
            if get_origin(tp) is tuple and isinstance(value, list):
                value = tuple(value)
            values[f.name] = value
    return cls(**values)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as JSON-ready data (tuples -> lists, paths -> strings)."""

    def convert(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: convert(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple | list):
            return [convert(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, Mapping):
            return {str(k): convert(x) for k, x in v.items()}
        return v

    return convert(config)


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild dataclass ``cls`` from :func:`config_to_dict` output; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise MedsharedError(f"{cls.__name__}: unknown configuration keys {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        tp, _ = _unwrap_optional(hints[name])
        if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
            value = config_from_dict(tp, value)
        elif (get_origin(tp) is tuple or tp is tuple) and isinstance(value, list):
            value = tuple(value)
        elif tp is Path and isinstance(value, str):
            value = Path(value)
        values[name] = value
    return cls(**values)
