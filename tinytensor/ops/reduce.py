"""Reductions: sum, mean, max, min, var, std, norm, logsumexp (over all axes, one axis or several, keepdims or
not), prod (over all axes or one), the running sum `cumsum`, and the bool reductions any and all.

Backward of a reduction spreads the output gradient back over the reduced axes. `_expand_back` restores the
reduced axes as size-1 axes so the gradient broadcasts against the input: the one helper every reduction uses.
"""
from __future__ import annotations

import builtins
from typing import NamedTuple

from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops._util import axis_arg, keepdims_arg
from tinytensor.ops.elementwise import cast, maximum, minimum, sqrt, where
from tinytensor.ops.shape import stack, unbind
from tinytensor.tensor import Tensor


class ValuesIndices(NamedTuple):
    """What max/min over one dim, sort and topk return, as PyTorch's `torch.return_types`: unpack it
    (`values, indices = x.max(1)`) or read `.values` and `.indices`."""

    values: Tensor
    indices: Tensor


class HistogramBins(NamedTuple):
    """What `histogram` returns, as PyTorch's: the counts (or densities) and the bin edges."""

    hist: Tensor
    bin_edges: Tensor


def _normalize_axes(axis, ndim: int) -> tuple:
    """All axes for None, else a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise IndexError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(a % builtins.max(ndim, 1) for a in axes))


def _expand_back(grad, input_shape: tuple, axes: tuple, keepdims: bool):
    """Give a reduced gradient its size-1 axes back so it broadcasts against the input."""
    if keepdims:
        return grad
    shape = list(input_shape)
    for a in axes:
        shape[a] = 1
    return grad.reshape(shape)


class Sum(Function):
    def forward(self, a, axes=(), keepdims=False):
        self.input_shape, self.axes, self.keepdims = a.shape, axes, keepdims
        return a.sum(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        grad = _expand_back(grad, self.input_shape, self.axes, self.keepdims)
        return self.xp.broadcast_to(grad, self.input_shape)


class Mean(Function):
    def forward(self, a, axes=(), keepdims=False):
        self.input_shape, self.axes, self.keepdims = a.shape, axes, keepdims
        self.count = _reduced_size(a.shape, axes)
        return a.mean(axis=axes, keepdims=keepdims)

    def backward(self, grad):
        grad = _expand_back(grad, self.input_shape, self.axes, self.keepdims) / self.count
        return self.xp.broadcast_to(grad, self.input_shape)


def _reduced_size(shape: tuple, axes: tuple) -> int:
    """How many elements each output element summarises."""
    size = 1
    for i, n in enumerate(shape):
        if i in axes:
            size *= n
    return size


class Extreme(Function):
    """max or min over axes. Ties share the gradient equally, like PyTorch's amax/amin."""

    def forward(self, a, axes=(), keepdims=False, largest=True):
        out = a.max(axis=axes, keepdims=True) if largest else a.min(axis=axes, keepdims=True)
        winners = a == out
        self.save_for_backward(winners / winners.sum(axis=axes, keepdims=True, dtype=a.dtype))
        self.input_shape, self.axes, self.keepdims = a.shape, axes, keepdims
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    def backward(self, grad):
        return _expand_back(grad, self.input_shape, self.axes, self.keepdims) * self.saved[0]


class Var(Function):
    """Variance with Bessel's `correction` (1 = unbiased, PyTorch's default; 0 = biased)."""

    def forward(self, a, axes=(), keepdims=False, correction=1):
        mean = a.mean(axis=axes, keepdims=True)
        centered = a - mean
        self.denominator = builtins.max(0, _reduced_size(a.shape, axes) - correction)
        self.save_for_backward(a)
        self.input_shape, self.axes, self.keepdims = a.shape, axes, keepdims
        return (centered * centered).sum(axis=axes, keepdims=keepdims) / self.denominator

    def backward(self, grad):
        a = self.saved[0]
        centered = a - a.mean(axis=self.axes, keepdims=True)  # recomputed: differentiable under create_graph
        grad = _expand_back(grad, self.input_shape, self.axes, self.keepdims)
        scale = 2 / self.denominator if self.denominator else float("nan")  # no degrees of freedom: NaN, as PyTorch
        return grad * scale * centered


class LogSumExp(Function):
    """log Σ exp(a), shifted by the max so logits of 1e4 do not overflow. Its gradient is softmax(a)."""

    def forward(self, a, axes=(), keepdims=False):
        xp = self.xp
        shift = a.max(axis=axes, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, 0)
        exps = xp.exp(a - shift)
        total = exps.sum(axis=axes, keepdims=True)
        self.save_for_backward(exps / total, a)  # a for `composed`
        self.input_shape, self.axes, self.keepdims = a.shape, axes, keepdims
        out = xp.log(total) + shift
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    def backward(self, grad):
        return _expand_back(grad, self.input_shape, self.axes, self.keepdims) * self.saved[0]

    def composed(self, a):
        from tinytensor.ops import composed

        return composed.logsumexp(a, self.axes, self.keepdims)


def _reduce(function: type[Function], a: Tensor, dim, keepdim, axis, keepdims, **options) -> Tensor:
    axes = _normalize_axes(axis_arg(dim, axis), a.ndim)
    return function.apply(a, axes=axes, keepdims=keepdims_arg(keepdim, keepdims), **options)


def sum(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:  # noqa: A001
    return _reduce(Sum, a, dim, keepdim, axis, keepdims)


def mean(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:
    return _reduce(Mean, a, dim, keepdim, axis, keepdims)


def amax(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:
    """Max values over one axis, several or all; tied elements share the gradient equally (as PyTorch's amax)."""
    return _reduce(Extreme, a, dim, keepdim, axis, keepdims, largest=True)


def amin(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:
    return _reduce(Extreme, a, dim, keepdim, axis, keepdims, largest=False)


def max(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """PyTorch's three `max`es: of everything (a 0-d tensor), over one dim ((values, indices)), or elementwise
    against another tensor (`maximum`). Several dims give the values only, like `amax`."""
    return _extreme(a, dim, keepdim, axis, keepdims, largest=True)


def min(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """PyTorch's three `min`es; see `max`."""
    return _extreme(a, dim, keepdim, axis, keepdims, largest=False)


def _extreme(a: Tensor, dim, keepdim, axis, keepdims, largest: bool):
    if isinstance(dim, Tensor):
        return maximum(a, dim) if largest else minimum(a, dim)
    values = _reduce(Extreme, a, dim, keepdim, axis, keepdims, largest=largest)
    chosen = axis_arg(dim, axis)
    if chosen is None or isinstance(chosen, tuple):
        return values
    pick = argmax if largest else argmin
    return ValuesIndices(values, pick(a, chosen, keepdims_arg(keepdim, keepdims)))


def var(a: Tensor, dim=None, unbiased: bool = True, keepdim=False, *, correction=None, axis=None,
        keepdims=None) -> Tensor:
    """Variance with PyTorch's arguments: `correction` (1, Bessel's, by default; 0 = biased) or the older
    `unbiased` flag, also accepted as the only argument (`x.var(False)`)."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    correction = (1 if unbiased else 0) if correction is None else correction
    return _reduce(Var, a, dim, keepdim, axis, keepdims, correction=correction)


def std(a: Tensor, dim=None, unbiased: bool = True, keepdim=False, *, correction=None, axis=None,
        keepdims=None) -> Tensor:
    """Standard deviation, √var with `var`'s arguments."""
    return sqrt(var(a, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims))


def logsumexp(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:
    return _reduce(LogSumExp, a, dim, keepdim, axis, keepdims)


class Prod(Function):
    """Product along one axis. Each factor's gradient is the product of all the others: the running products from
    both ends, each stopping just short of it, multiplied. Dividing the product by the factor would give 0/0 where
    a factor is 0; this stays right with zeros."""

    def forward(self, a, axis=0, keepdims=False):
        self.save_for_backward(a)
        self.axis, self.keepdims = axis, keepdims
        return a.prod(axis=axis, keepdims=keepdims)

    def backward(self, grad):
        xp, a, axis = self.xp, self.saved[0], self.axis
        if a.shape[axis] == 0:  # an empty product is 1 whatever its (absent) factors
            return xp.zeros(a.shape, dtype=grad.dtype)
        lead = (slice(None),) * axis
        ones = xp.ones(a.shape[:axis] + (1,) + a.shape[axis + 1:], dtype=a.dtype)
        before = xp.cumprod(xp.concatenate([ones, a[lead + (slice(None, -1),)]], axis), axis)
        after = xp.flip(xp.cumprod(xp.flip(xp.concatenate([a[lead + (slice(1, None),)], ones], axis), axis), axis),
                        axis)
        grad = grad if self.keepdims else xp.expand_dims(grad, axis)
        return grad * before * after

    def composed(self, a):
        from tinytensor.ops import composed

        return composed.prod(a, self.axis, self.keepdims)


def prod(a: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """torch.prod: the product of all elements (a 0-d tensor), or along one `dim`; integer and bool inputs
    multiply in int64, as PyTorch. The gradient is right where factors are 0."""
    if dtype is None and not backend.is_floating(a.dtype):
        dtype = backend.int64
    a = a if dtype is None else cast(a, dtype)
    if dim is None:
        out = Prod.apply(a.reshape(-1), axis=0)
        return out.reshape((1,) * a.ndim) if keepdim else out
    return Prod.apply(a, axis=_normalize_axes(dim, a.ndim)[0], keepdims=keepdim)


def any(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001 - PyTorch's name
    """Whether any element (over `dim`: one axis or a tuple) is non-zero, as a bool tensor."""
    return Tensor._wrap(a.data.any(axis=axis_arg(dim, None), keepdims=keepdim))


def all(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001 - PyTorch's name
    """Whether every element (over `dim`: one axis or a tuple) is non-zero, as a bool tensor."""
    return Tensor._wrap(a.data.all(axis=axis_arg(dim, None), keepdims=keepdim))


def argmax(a: Tensor, dim=None, keepdim=False) -> Tensor:
    """Indices of the max (an int64 tensor, no gradient); the first one on ties, as PyTorch."""
    if dim is None:
        return Tensor._wrap(a.data.argmax())
    return Tensor._wrap(a.xp.argmax(a.data, axis=dim, keepdims=keepdim))


def argmin(a: Tensor, dim=None, keepdim=False) -> Tensor:
    if dim is None:
        return Tensor._wrap(a.data.argmin())
    return Tensor._wrap(a.xp.argmin(a.data, axis=dim, keepdims=keepdim))


class Norm(Function):
    """The p-norm (Σ|a|ᵖ)^(1/p) over axes. d/da = sign(a)·|a|^(p−1) / norm^(p−1), taken as 0 where the norm is 0
    (PyTorch's subgradient there)."""

    def forward(self, a, axes=(), keepdims=False, p=2.0):
        xp = self.xp
        magnitude = xp.abs(a)
        out = xp.sqrt((a * a).sum(axis=axes, keepdims=True)) if p == 2 else \
            (magnitude**p).sum(axis=axes, keepdims=True) ** (1 / p)
        out = out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])
        self.save_for_backward(a, out)
        self.input_shape, self.axes, self.keepdims, self.p = a.shape, axes, keepdims, p
        return out

    def backward(self, grad):
        xp = self.xp
        a, norm = self.saved
        norm = _expand_back(norm, self.input_shape, self.axes, self.keepdims)
        p = self.p
        safe_norm = xp.where(norm == 0, 1, norm)
        slope = a / safe_norm if p == 2 else xp.sign(a) * (xp.abs(a) / safe_norm) ** (p - 1)
        return _expand_back(grad, self.input_shape, self.axes, self.keepdims) * xp.where(norm == 0, 0, slope)


def norm(a: Tensor, p=2.0, dim=None, keepdim=False) -> Tensor:
    """torch.norm / Tensor.norm: the p-norm (p ≥ 1; 'fro' = 2) of everything or over `dim`, as a vector norm."""
    p = 2.0 if p == "fro" else float(p)
    if not 1 <= p < float("inf"):
        raise ValueError(f"norm: p must be a finite number ≥ 1 (or 'fro'), got {p}")
    return _reduce(Norm, a, dim, keepdim, None, None, p=p)


class CumSum(Function):
    """Running sum along one axis. Each input feeds every later output, so the gradient is the running sum of the
    output gradient taken from the end: flip, cumsum, flip."""

    def forward(self, a, axis=0):
        self.axis = axis
        return self.xp.cumsum(a, axis=axis)

    def backward(self, grad):
        xp = self.xp
        return xp.flip(xp.cumsum(xp.flip(grad, self.axis), axis=self.axis), self.axis)


class CumProd(Function):
    """Running product along one axis. ∂yₖ/∂xᵢ = Π_{j≤k, j≠i} xⱼ for k ≥ i, so dxᵢ = (Π_{j<i} xⱼ)·Sᵢ with
    Sᵢ = gᵢ + x_{i+1}·S_{i+1}: one backward scan, exact when some x are zero (dividing y by x would not be)."""

    def forward(self, a, axis=0):
        self.axis = axis
        self.save_for_backward(a)
        return self.xp.cumprod(a, axis=axis)

    def backward(self, grad):
        xp, a = self.xp, _axis_last(self.xp, self.saved[0], self.axis)
        g = _axis_last(xp, grad, self.axis)
        before = xp.concatenate([xp.ones_like(a[..., :1]), xp.cumprod(a[..., :-1], axis=-1)], axis=-1)
        scanned, running = xp.empty_like(g), xp.zeros_like(g[..., 0])
        for i in range(a.shape[-1] - 1, -1, -1):
            running = g[..., i] + (a[..., i + 1] * running if i + 1 < a.shape[-1] else 0)
            scanned[..., i] = running
        return xp.moveaxis(before * scanned, -1, self.axis)

    def composed(self, a):
        running, products = None, []
        for piece in unbind(a, self.axis):
            running = piece if running is None else running * piece
            products.append(running)
        return stack(products, self.axis)


def _axis_last(xp, array, axis: int):
    """`array` with `axis` moved last (a view)."""
    return xp.moveaxis(array, axis, -1)


def cumprod(a: Tensor, dim: int, *, dtype=None) -> Tensor:
    """torch.cumprod along `dim`; integer and bool inputs multiply in int64, as PyTorch."""
    if dtype is None and not backend.is_floating(a.dtype):
        dtype = backend.int64
    a = a if dtype is None else cast(a, dtype)
    if not backend.is_floating(a.dtype):
        return Tensor._wrap(a.xp.cumprod(a.data, axis=_normalize_axes(dim, a.ndim)[0]))
    return CumProd.apply(a, axis=_normalize_axes(dim, a.ndim)[0])


def nansum(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """The sum ignoring NaNs (treated as zero)."""
    return where(a.xp.isnan(a.data), 0.0, a).sum(dim, keepdim)


def nanmean(a: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """The mean of the non-NaN elements (NaN where there are none)."""
    present = Tensor._wrap((~a.xp.isnan(a.data)).astype(a.dtype))
    return nansum(a, dim, keepdim) / present.sum(dim, keepdim)


def cumsum(a: Tensor, dim: int, *, dtype=None) -> Tensor:
    """torch.cumsum along `dim`; integer and bool inputs sum in int64, as PyTorch."""
    if dtype is None and not backend.is_floating(a.dtype):
        dtype = backend.int64
    return CumSum.apply(a if dtype is None else cast(a, dtype), axis=_normalize_axes(dim, a.ndim)[0])


def histogram(input: Tensor, bins: int = 100, *, range: tuple | None = None, weight: Tensor | None = None,  # noqa: A002
              density: bool = False) -> HistogramBins:
    """torch.histogram of a float tensor's values: `bins` equal bins over `range` (default: min to max), counts
    or `density`; no gradient (makemore plots activations with it)."""
    if not backend.is_floating(input.dtype):
        raise TypeError(f"histogram: expects a floating tensor, got dtype {input.dtype}")
    counts, edges = input.xp.histogram(input.data.reshape(-1), bins=int(bins), range=range,
                                       weights=None if weight is None else weight.data.reshape(-1), density=density)
    return HistogramBins(Tensor._wrap(counts.astype(input.dtype)), Tensor._wrap(edges.astype(input.dtype)))


def histc(input: Tensor, bins: int = 100, min: float = 0, max: float = 0) -> Tensor:  # noqa: A002
    """torch.histc: counts in `bins` equal bins over [min, max] (both 0: the data's own range); values outside
    are ignored."""
    low, high = (float(min), float(max)) if (min, max) != (0, 0) else (None, None)
    if low is None and input.numel():
        low, high = float(input.data.min()), float(input.data.max())
    return histogram(input, bins, range=(low, high) if low is not None else None).hist


def var_mean(input: Tensor, dim=None, *, correction: int = 1, keepdim: bool = False) -> tuple[Tensor, Tensor]:  # noqa: A002
    """(var, mean) over `dim` in one call, as torch.var_mean."""
    return var(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input: Tensor, dim=None, *, correction: int = 1, keepdim: bool = False) -> tuple[Tensor, Tensor]:  # noqa: A002
    """(std, mean) over `dim` in one call, as torch.std_mean."""
    return std(input, dim, keepdim=keepdim, correction=correction), mean(input, dim, keepdim)


def count_nonzero(input: Tensor, dim=None) -> Tensor:  # noqa: A002
    """How many elements are not zero (over `dim`: an int, a tuple or None for all), int64, no gradient."""
    axes = _normalize_axes(dim, input.ndim)
    return Tensor._wrap(input.xp.count_nonzero(input.data, axis=axes).astype(backend.int64))


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,  # noqa: A002
           dim=None):
    """The distinct values, sorted (the flattened input's; `dim` is not supported), with the inverse indices
    and counts when asked, as torch.unique; no gradient."""
    if dim is not None:
        raise NotImplementedError("unique: dim= is not supported; call it on the flattened tensor")
    values, inverse, counts = input.xp.unique(input.data.reshape(-1), return_inverse=True, return_counts=True)
    out = [Tensor._wrap(values)]
    if return_inverse:
        out.append(Tensor._wrap(inverse.reshape(input.shape).astype(backend.int64)))
    if return_counts:
        out.append(Tensor._wrap(counts.astype(backend.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(input: Tensor, weights: Tensor | None = None, minlength: int = 0) -> Tensor:  # noqa: A002
    """Counts (or summed `weights`) of each value of a 1-D tensor of non-negative ints; no gradient."""
    if input.ndim != 1 or backend.is_floating(input.dtype):
        raise ValueError(f"bincount: expects a 1-D tensor of non-negative integers, got {input.dtype} {input.shape}")
    counts = input.xp.bincount(input.data, weights=None if weights is None else weights.data, minlength=minlength)
    return Tensor._wrap(counts if weights is not None else counts.astype(backend.int64))
