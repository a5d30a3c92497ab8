"""Creating tensors: from data, filled, ranges, and random draws from the seeded generators of `backend`."""
from __future__ import annotations

from tinytensor import backend
from tinytensor.ops._util import shape_arg
from tinytensor.tensor import Tensor


def tensor(data, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """A new tensor from a list, scalar, NumPy/CuPy array or Tensor. Python floats give float32, ints int64."""
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _filled(fill, shape, dtype, device, requires_grad) -> Tensor:
    xp = backend.module_for(device)
    dtype = backend.DEFAULT_FLOAT if dtype is None else backend.as_dtype(dtype)
    return Tensor(xp.full(shape_arg(shape), fill, dtype=dtype), requires_grad=requires_grad)


def zeros(*shape, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return _filled(0, shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return _filled(1, shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return _filled(fill_value, (shape,) if isinstance(shape, int) else shape, dtype, device, requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _filled(0, t.shape, dtype or t.dtype, t.device, requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return _filled(1, t.shape, dtype or t.dtype, t.device, requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return _filled(fill_value, t.shape, dtype or t.dtype, t.device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device: str = "cpu") -> Tensor:
    """Like torch.arange: int64 for integer arguments, float32 otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, int) for v in (start, end, step))
        dtype = backend.int64 if integral else backend.DEFAULT_FLOAT
    return Tensor(backend.module_for(device).arange(start, end, step, dtype=backend.as_dtype(dtype)))


def randn(*shape, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the device's seeded generator."""
    dtype = backend.as_dtype(dtype or backend.DEFAULT_FLOAT)
    draw = backend.generator(device).standard_normal(shape_arg(shape), dtype=_draw_dtype(dtype))
    return Tensor(draw.astype(dtype, copy=False), requires_grad=requires_grad)


def rand(*shape, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    dtype = backend.as_dtype(dtype or backend.DEFAULT_FLOAT)
    draw = backend.generator(device).random(shape_arg(shape), dtype=_draw_dtype(dtype))
    return Tensor(draw.astype(dtype, copy=False), requires_grad=requires_grad)


def randint(low: int, high: int, size: tuple, device: str = "cpu") -> Tensor:
    """Integers in [low, high) as int64."""
    return Tensor(backend.generator(device).integers(low, high, size=size, dtype=backend.int64))


def _draw_dtype(dtype):
    """Generators draw float32 or float64 only; float16 is drawn in float32 and cast."""
    return backend.float32 if dtype == backend.float16 else dtype


def multinomial(probs: Tensor, num_samples: int = 1) -> Tensor:
    """Draw class ids from each row of probabilities [..., C] (with replacement), by inverting the CDF."""
    xp = probs.xp
    cdf = xp.cumsum(probs.data, axis=-1, dtype=backend.float64)
    cdf /= cdf[..., -1:]
    uniform = backend.generator(probs.device).random((*probs.shape[:-1], num_samples))
    ids = (cdf[..., None, :] <= uniform[..., None]).sum(axis=-1)
    return Tensor(xp.minimum(ids, probs.shape[-1] - 1).astype(backend.int64))
