"""Reductions: sum, mean, max, min, var, logsumexp (over all axes, one axis or several, keepdims or not).

Backward of a reduction spreads the output gradient back over the reduced axes. `_expand_back` restores the
reduced axes as size-1 axes so the gradient broadcasts against the input: the one helper every reduction uses.
"""
from __future__ import annotations

import builtins

from tinytensor.autograd import Function
from tinytensor.ops._util import axis_arg, keepdims_arg
from tinytensor.tensor import Tensor


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
        self.save_for_backward(centered)
        self.input_shape, self.axes, self.keepdims = a.shape, axes, keepdims
        return (centered * centered).sum(axis=axes, keepdims=keepdims) / self.denominator

    def backward(self, grad):
        centered = self.saved[0]
        grad = _expand_back(grad, self.input_shape, self.axes, self.keepdims)
        return grad * (2 / self.denominator) * centered


class LogSumExp(Function):
    """log Σ exp(a), shifted by the max so logits of 1e4 do not overflow. Its gradient is softmax(a)."""

    def forward(self, a, axes=(), keepdims=False):
        xp = self.xp
        shift = a.max(axis=axes, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, 0)
        exps = xp.exp(a - shift)
        total = exps.sum(axis=axes, keepdims=True)
        self.save_for_backward(exps / total)
        self.input_shape, self.axes, self.keepdims = a.shape, axes, keepdims
        out = xp.log(total) + shift
        return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    def backward(self, grad):
        return _expand_back(grad, self.input_shape, self.axes, self.keepdims) * self.saved[0]


def _reduce(function: type[Function], a: Tensor, dim, keepdim, axis, keepdims, **options) -> Tensor:
    axes = _normalize_axes(axis_arg(dim, axis), a.ndim)
    return function.apply(a, axes=axes, keepdims=keepdims_arg(keepdim, keepdims), **options)


def sum(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:  # noqa: A001
    return _reduce(Sum, a, dim, keepdim, axis, keepdims)


def mean(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:
    return _reduce(Mean, a, dim, keepdim, axis, keepdims)


def max(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:  # noqa: A001
    """Max values over `dim` (PyTorch's amax: values only; use `argmax` for indices)."""
    return _reduce(Extreme, a, dim, keepdim, axis, keepdims, largest=True)


def min(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:  # noqa: A001
    return _reduce(Extreme, a, dim, keepdim, axis, keepdims, largest=False)


def var(a: Tensor, dim=None, keepdim=False, *, correction=1, axis=None, keepdims=None) -> Tensor:
    return _reduce(Var, a, dim, keepdim, axis, keepdims, correction=correction)


def logsumexp(a: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None) -> Tensor:
    return _reduce(LogSumExp, a, dim, keepdim, axis, keepdims)


def argmax(a: Tensor, dim=None, keepdim=False) -> Tensor:
    """Indices of the max (an int64 tensor, no gradient)."""
    if dim is None:
        return Tensor._wrap(a.data.argmax())
    return Tensor._wrap(a.xp.argmax(a.data, axis=dim, keepdims=keepdim))
