"""CuPy's published names and signatures (tests/fixtures/cupy_api.json), as `inspect.Signature`s to bind calls."""
from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path

API = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "cupy_api.json").read_text())


def names_of(section: str) -> set:
    """Every public name of a CuPy module section of the API file."""
    entry = API[section]
    return {*entry["functions"], *entry["ufuncs"], *entry["classes"], *entry["constants"], *entry["modules"]}


@functools.cache
def signature(section: str, name: str) -> inspect.Signature | None:
    """CuPy's signature of a function or method (None: CuPy publishes none, so any call binds)."""
    entry = API[section]
    params = (entry.get("functions") or entry.get("methods"))[name]
    if params is None:
        return None
    kinds = inspect.Parameter
    return inspect.Signature([kinds(p, getattr(kinds, kind), default=None if has_default else kinds.empty)
                              for p, kind, has_default in params])


def check_call(section: str, name: str, args: tuple, kwargs: dict) -> None:
    """Raise CuPy's TypeError for a call that real CuPy's signature would refuse (an unknown keyword, a
    missing or extra argument)."""
    found = signature(section, name)
    if found is None:
        return
    try:
        found.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{section}.{name}(): {error} (CuPy {API['cupy_version']}'s signature is {found})") \
            from None
