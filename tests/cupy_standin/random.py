"""`cupy.random` of the stand-in: `default_rng` and a Generator with exactly CuPy's methods and signatures.

CuPy's streams differ from NumPy's for the same seed, so tests must not compare CPU and 'cuda' draws; the stand-in
draws from NumPy's generator underneath, which is enough to run the code path.
"""
from __future__ import annotations

import numpy

from .api import API, check_call
from .device_array import unwrap, wrap


class Generator:
    """`cupy.random.Generator`: CuPy's methods only (no `bit_generator`, no `choice`, no `normal`)."""

    def __init__(self, seed=None):
        self._numpy = numpy.random.default_rng(seed)


def _draw(name: str):
    def method(self, *args, **kwargs):
        check_call("cupy.random.Generator", name, (self, *args), kwargs)
        out = kwargs.pop("out", None)
        result = getattr(self._numpy, name)(*unwrap(args, name), **kwargs)
        if out is None:
            return wrap(result)
        out[...] = wrap(result)
        return out

    method.__name__ = name
    return method


for _name in API["cupy.random.Generator"]["methods"]:
    setattr(Generator, _name, _draw(_name))


def default_rng(seed=None) -> Generator:
    check_call("cupy.random", "default_rng", (seed,), {})
    return Generator(seed)


def namespace() -> dict:
    return {"default_rng": default_rng, "Generator": Generator}
