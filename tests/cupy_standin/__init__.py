"""A strict CuPy stand-in for the test suite: CuPy's rules on the CPU, so the 'cuda' code path runs without a GPU.

Test-only: `pytest --cupy-standin` (tests/conftest.py) hands `build()`'s module to `tinytensor.backend` in place of
`import cupy`; the library never imports this package. What it imitates, from CuPy 14.2 (tests/fixtures/
cupy_api.json, written by tests/fixtures/make_cupy_api.py from CuPy's published wheel):

- only CuPy's public names exist (`cupy.foo` for a NumPy-only `foo` is an AttributeError), and every call binds
  against CuPy's Python-level signature (`cupy.indices(shape, sparse=True)` is a TypeError, as on a GPU);
- a device array (`ndarray`, wrapping a NumPy array as its "device memory") refuses implicit conversion to NumPy
  (`numpy.asarray(x)`, `__array__`, the buffer protocol) and NumPy operands, with CuPy's TypeErrors; NumPy's
  functions and ufuncs applied to device arrays dispatch to the stand-in through `__array_function__` and
  `__array_ufunc__`, as they do to CuPy;
- `cupy.random.default_rng` gives a Generator with exactly CuPy's methods;
- every device-to-host synchronisation (`.get()`, `cupy.asnumpy`, `.item()`, `.tolist()`, `float/int/bool(x)`,
  printing) and every host-to-device upload is counted in `COUNTS`, so tests can bound them;
- `cupy.cuda.nccl` has an in-process communicator: the ranks of one group are threads of this process.
"""
from __future__ import annotations

import collections
import types

from . import cuda, device_array, random
from .api import API, names_of
from .device_array import COUNTS, ndarray, sync_count

__all__ = ["API", "COUNTS", "build", "ndarray", "sync_count", "reset_counts"]


def reset_counts() -> collections.Counter:
    """Zero the counters and return them (a fresh measurement starts here)."""
    COUNTS.clear()
    return COUNTS


def build() -> types.ModuleType:
    """A new module object named `cupy` with the stand-in's namespace."""
    module = types.ModuleType("cupy", "strict CuPy stand-in (tests/cupy_standin)")
    module.__dict__.update(device_array.namespace("cupy"))
    module.linalg = _submodule("cupy.linalg", device_array.namespace("cupy.linalg"))
    module.random = _submodule("cupy.random", random.namespace())
    module.cuda = cuda.build_module()
    module.__getattr__ = _missing("cupy", names_of("cupy"))
    module.__version__ = API["cupy_version"]
    return module


def _submodule(name: str, names: dict) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(names)
    module.__getattr__ = _missing(name, names_of(name))
    return module


def _missing(module_name: str, published: set):
    """Module `__getattr__`: a name CuPy lacks is an AttributeError, as in CuPy; one it has but the stand-in does
    not imitate says so (extend the stand-in rather than work around it)."""

    def __getattr__(name: str):  # noqa: N807 - a module-level __getattr__
        if name in published:
            raise AttributeError(f"{module_name}.{name} exists in CuPy but the test stand-in does not imitate it; "
                                 "add it to tests/cupy_standin")
        raise AttributeError(f"module '{module_name}' has no attribute '{name}'")

    return __getattr__
