"""Command-line flags from config dataclasses, shared by every trainer: `--n-layer 2` for a field `n_layer`.

Each trainer layers its settings the same way: preset, then the flags the user actually gave (`explicit_flags`),
so an unset flag never overrides a preset or a resumed run's saved value.
"""
from __future__ import annotations

import argparse
import inspect


def flag_type(annotation):
    """argparse type for a dataclass annotation (a string under postponed evaluation); None when not a scalar."""
    text = str(annotation)
    if any(container in text for container in ("dict", "list", "tuple", "Mapping", "Sequence")):
        return None
    if "bool" in text:
        return parse_bool
    return int if "int" in text else float if "float" in text else str if "str" in text else None


def parse_bool(value: str) -> bool:
    """`--bias false`: accepts 1/0, true/false, yes/no."""
    if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return value.lower() in ("1", "true", "yes")


def config_fields(config_class: type, exclude: set[str] | frozenset[str] = frozenset()) -> dict:
    """Name → flag type for the scalar arguments of a config class's constructor (so init-only ones such as
    LlamaConfig's legacy `rope_theta` count too), minus `exclude` (fields a trainer derives itself)."""
    kinds = {name: flag_type(parameter.annotation)
             for name, parameter in inspect.signature(config_class).parameters.items()}
    return {name: kind for name, kind in kinds.items() if kind is not None and name not in exclude}


def explicit_flags(args: argparse.Namespace) -> dict:
    """The flags the user gave (argparse leaves the others None)."""
    return {k: v for k, v in vars(args).items() if v is not None}
