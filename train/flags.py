"""Command-line flags from config dataclasses, shared by every trainer: `--n-layer 2` for a field `n_layer`.

Each trainer layers its settings the same way: preset, then the flags the user actually gave (`explicit_flags`),
so an unset flag never overrides a preset or a resumed run's saved value. `run_command` is the one `main` of the
registry-based trainers (train.lm, train.mlm): a mistake the user can fix prints one line and exits with 2.
"""
from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable


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


def run_command(argv: list[str] | None, parse_args: Callable, make_run: Callable, train: Callable,
                user_errors: tuple[type[BaseException], ...]) -> int:
    """parse_args(argv) -> (args, model name); make_run(args, name) prepares the run; train(run) -> exit code."""
    try:
        run = make_run(*parse_args(argv))
    except user_errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return train(run)
