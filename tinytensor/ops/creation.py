"""Creating tensors: from data, filled, ranges, and random draws from the seeded generators of `backend`."""
from __future__ import annotations

from tinytensor import backend
from tinytensor.ops._util import shape_arg
from tinytensor.tensor import Tensor


def tensor(data, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """A new tensor from a list, scalar, NumPy/CuPy array or Tensor. Python floats give float32, ints int64.

    Like torch.tensor it copies: an in-place op on the result never writes into `data` (`from_numpy` shares)."""
    source = data.data if isinstance(data, Tensor) else data
    out = Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
    if out.data is source:
        out.data = out.data.copy()
    return out


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


def empty_like(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
    return empty(*t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def rand_like(t: Tensor, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    return rand(*t.shape, generator=generator, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, requires_grad: bool = False, generator=None) -> Tensor:
    return randn(*t.shape, generator=generator, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def randint_like(t: Tensor, low: int = 0, high=None, *, dtype=None, generator=None) -> Tensor:
    """Integers in [low, high) (randint_like(t, high) or randint_like(t, low, high)) in t's shape, dtype, device."""
    low, high = (0, low) if high is None else (low, high)
    return randint(low, high, t.shape, generator=generator, dtype=dtype or t.dtype, device=t.device)


def eye(n: int, m: int | None = None, *, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """The n×m identity (m = n by default), float32 unless `dtype`."""
    dtype = backend.DEFAULT_FLOAT if dtype is None else backend.as_dtype(dtype)
    return Tensor(backend.module_for(device).eye(int(n), None if m is None else int(m), dtype=dtype),
                  requires_grad=requires_grad)


def as_tensor(data, dtype=None, device: str | None = None) -> Tensor:
    """torch.as_tensor: a tensor sharing `data`'s memory when it already is an array of the asked dtype and device
    (a Tensor itself is returned as it is then), else a converted copy."""
    if isinstance(data, Tensor) and (dtype is None or backend.as_dtype(dtype) == data.dtype) and \
            (device is None or backend.normalize_device(device) == data.device):
        return data
    return Tensor(data, dtype=dtype, device=device)


def arange(start, end=None, step=1, dtype=None, device: str = "cpu") -> Tensor:
    """Like torch.arange: int64 for integer arguments, float32 otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, int) for v in (start, end, step))
        dtype = backend.int64 if integral else backend.DEFAULT_FLOAT
    return Tensor(backend.module_for(device).arange(start, end, step, dtype=backend.as_dtype(dtype)))


def linspace(start, end, steps: int, *, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from `start` to `end`, both included (float32 unless `dtype`)."""
    if int(steps) < 0:
        raise ValueError(f"linspace: steps must be >= 0, got {steps}")
    dtype = backend.as_dtype(dtype or backend.DEFAULT_FLOAT)
    values = backend.module_for(device).linspace(float(start), float(end), int(steps), dtype=backend.float64)
    return Tensor(values.astype(dtype, copy=False), requires_grad=requires_grad)


def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, device: str = "cpu",
             requires_grad: bool = False) -> Tensor:
    """base ** linspace(start, end, steps)."""
    exponents = linspace(start, end, steps, dtype=backend.float64, device=device).data
    dtype = backend.as_dtype(dtype or backend.DEFAULT_FLOAT)
    return Tensor((float(base) ** exponents).astype(dtype, copy=False), requires_grad=requires_grad)


def randn(*shape, generator=None, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the device's seeded generator (or from `generator`)."""
    dtype = backend.as_dtype(dtype or backend.DEFAULT_FLOAT)
    draw = backend.draws(device, generator).standard_normal(shape_arg(shape), dtype=_draw_dtype(dtype))
    return Tensor(draw.astype(dtype, copy=False), requires_grad=requires_grad)


def rand(*shape, generator=None, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    dtype = backend.as_dtype(dtype or backend.DEFAULT_FLOAT)
    draw = backend.draws(device, generator).random(shape_arg(shape), dtype=_draw_dtype(dtype))
    return Tensor(draw.astype(dtype, copy=False), requires_grad=requires_grad)


def empty(*shape, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor (whatever the memory held): for buffers that are written before they are read."""
    dtype = backend.DEFAULT_FLOAT if dtype is None else backend.as_dtype(dtype)
    array = backend.module_for(device).empty(shape_arg(shape), dtype=dtype)
    return Tensor(array, requires_grad=requires_grad)


def randint(low: int = 0, high=None, size=None, *, generator=None, dtype=None, device: str = "cpu") -> Tensor:
    """Integers in [low, high) (int64 unless `dtype`), called as PyTorch allows: randint(high, size) or
    randint(low, high, size), `size` a tuple."""
    if isinstance(high, (tuple, list)) or high is None:  # randint(high, size) or randint(high, size=size)
        low, high, size = 0, low, size if high is None else high
    if size is None:
        raise TypeError("randint: missing the size argument, e.g. randint(10, (3,))")
    size = (size,) if isinstance(size, int) else tuple(size)
    draw = backend.draws(device, generator).integers(int(low), int(high), size=size, dtype=backend.int64)
    return Tensor(draw if dtype is None else draw.astype(backend.as_dtype(dtype)))


def randperm(n: int, *, generator=None, dtype=None, device: str = "cpu") -> Tensor:
    """A random permutation of 0 … n−1 (int64 unless `dtype`): the order that sorts n uniform draws (CuPy's
    generator has no `permutation`)."""
    draw = backend.module_for(device).argsort(backend.draws(device, generator).random(int(n)))
    return Tensor(draw.astype(backend.as_dtype(dtype or backend.int64), copy=False))


def from_numpy(array) -> Tensor:
    """A CPU tensor sharing the NumPy array's memory (writes through either show in both), keeping its dtype."""
    if not hasattr(array, "dtype") or backend.device_of(array) != "cpu":
        raise TypeError(f"from_numpy expects a NumPy array, got {type(array).__name__}")
    return Tensor._wrap(backend.module_for("cpu").asarray(array))


def _draw_dtype(dtype):
    """Generators draw float32 or float64 only; float16 is drawn in float32 and cast."""
    return backend.float32 if dtype == backend.float16 else dtype


def multinomial(probs: Tensor, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """Draw `num_samples` class ids from each row of non-negative weights [..., C] → [..., num_samples] (int64).

    With replacement (or for one sample) each draw inverts the CDF. Without, as PyTorch's default, each class is
    drawn at most once: every class gets an exponential clock −log(U)/p and the first `num_samples` to ring win,
    which is the same distribution as drawing one at a time and renormalising.
    """
    xp = probs.xp
    source = backend.draws(probs.device, generator)
    if replacement or num_samples == 1:
        cdf = xp.cumsum(probs.data, axis=-1, dtype=backend.float64)
        cdf /= cdf[..., -1:]
        uniform = source.random((*probs.shape[:-1], num_samples))
        ids = (cdf[..., None, :] <= uniform[..., None]).sum(axis=-1)
        return Tensor(xp.minimum(ids, probs.shape[-1] - 1).astype(backend.int64))
    if num_samples > int((probs.data > 0).sum(axis=-1).min()):
        raise RuntimeError(f"multinomial: cannot draw {num_samples} samples without replacement from rows with "
                           "fewer categories of non-zero probability; pass replacement=True")
    weights = probs.data.astype(backend.float64)
    positive = weights > 0
    clocks = xp.where(positive, -xp.log1p(-source.random(probs.shape)) / xp.where(positive, weights, 1), xp.inf)
    return Tensor(xp.argsort(clocks, axis=-1, kind="stable")[..., :num_samples].astype(backend.int64))
