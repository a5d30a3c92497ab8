"""Elementwise ops: arithmetic, unary math, selection, comparisons and casts (activations: `ops/activation.py`).

Each op is a `Function` whose backward sits right under its forward. Binary ops may broadcast: their backward
returns gradients in the broadcast shape and the engine reduces them (`autograd.sum_to`), so no op repeats that
logic. Comparisons and logical ops return bool tensors and never carry gradient.
"""
from __future__ import annotations


from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops._util import check_broadcastable, lift, operands
from tinytensor.tensor import Tensor


# ---- arithmetic ---------------------------------------------------------------------------------------------------
class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        return grad, (-grad if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(a if self.needs_input_grad[1] else None, b if self.needs_input_grad[0] else None)
        return a * b

    def backward(self, grad):
        a, b = self.saved
        return (grad * b if b is not None else None), (grad * a if a is not None else None)


class Div(Function):
    def forward(self, a, b):
        out = a / b
        self.save_for_backward(b, out if self.needs_input_grad[1] else None)
        return out

    def backward(self, grad):
        b, out = self.saved
        grad_a = grad / b
        return grad_a, (-grad_a * out if out is not None else None)


class Pow(Function):
    """a ** b for tensors a, b (b often a weak scalar). d/da = b·a^(b−1); d/db = a^b·log a."""

    def forward(self, a, b):
        out = a**b
        self.save_for_backward(a, b, out)
        return out

    def backward(self, grad):
        a, b, out = self.saved
        grad_a = grad * b * a ** (b - 1) if self.needs_input_grad[0] else None
        grad_b = grad * out * self.xp.log(a) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, grad):
        return -grad


def _binary(function: type[Function], a, b) -> Tensor:
    a, b = operands(a, b)
    try:
        return function.apply(a, b)
    except ValueError:  # checked only on failure: the check would cost more than a small op
        check_broadcastable(function.__name__.lower(), a, b)
        raise


def add(a, b) -> Tensor:
    return _binary(Add, a, b)


def sub(a, b) -> Tensor:
    return _binary(Sub, a, b)


def mul(a, b) -> Tensor:
    return _binary(Mul, a, b)


def div(a, b) -> Tensor:
    a, b = operands(a, b)
    if not backend.is_floating(a.dtype):  # true division of ints gives floats, as in PyTorch
        a, b = cast(a, backend.DEFAULT_FLOAT), cast(b, backend.DEFAULT_FLOAT)
    return _binary(Div, a, b)


def pow(a, b) -> Tensor:  # noqa: A001 - PyTorch's name
    return _binary(Pow, a, b)


def neg(a: Tensor) -> Tensor:
    return Neg.apply(a)


def lerp(start, end, weight) -> Tensor:
    """start + weight·(end − start): linear interpolation, weight a number or a tensor (which gets a gradient)."""
    return add(start, mul(weight, sub(end, start)))


def addcmul(input, tensor1, tensor2, *, value=1) -> Tensor:  # noqa: A002 - PyTorch's names
    """input + value·tensor1·tensor2 (Adam-style updates in one call)."""
    return add(input, mul(mul(tensor1, tensor2), value))


def addcdiv(input, tensor1, tensor2, *, value=1) -> Tensor:  # noqa: A002 - PyTorch's names
    """input + value·tensor1 / tensor2."""
    return add(input, mul(div(tensor1, tensor2), value))


# ---- unary math ---------------------------------------------------------------------------------------------------
class Exp(Function):
    def forward(self, a):
        out = self.xp.exp(a)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        return grad * self.saved[0]


class Log(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.log(a)

    def backward(self, grad):
        return grad / self.saved[0]


class Sqrt(Function):
    def forward(self, a):
        out = self.xp.sqrt(a)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        return grad / (2 * self.saved[0])


class Rsqrt(Function):
    def forward(self, a):
        out = 1 / self.xp.sqrt(a)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        out = self.saved[0]
        return grad * (-0.5 * out * out * out)


class Tanh(Function):
    def forward(self, a):
        out = self.xp.tanh(a)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        out = self.saved[0]
        return grad * (1 - out * out)


class Sigmoid(Function):
    def forward(self, a):
        out = stable_sigmoid(self.xp, a)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        out = self.saved[0]
        return grad * out * (1 - out)


class Abs(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.abs(a)

    def backward(self, grad):
        return grad * self.xp.sign(self.saved[0])


class Clamp(Function):
    """Clip to [low, high]; the gradient flows only where the input was inside the range."""

    def forward(self, a, low=None, high=None):
        inside = self.xp.ones(a.shape, dtype=bool)
        if low is not None:
            inside &= a >= low
        if high is not None:
            inside &= a <= high
        self.save_for_backward(inside)
        return self.xp.clip(a, low, high)

    def backward(self, grad):
        return grad * self.saved[0]


def stable_sigmoid(xp, a):
    """1/(1+e^−a) without overflow for large |a|."""
    exp_neg_abs = xp.exp(-xp.abs(a))
    return xp.where(a >= 0, 1 / (1 + exp_neg_abs), exp_neg_abs / (1 + exp_neg_abs))


def exp(a: Tensor) -> Tensor:
    return Exp.apply(a)


def log(a: Tensor) -> Tensor:
    return Log.apply(a)


def sqrt(a: Tensor) -> Tensor:
    return Sqrt.apply(a)


def rsqrt(a: Tensor) -> Tensor:
    return Rsqrt.apply(a)


def tanh(a: Tensor) -> Tensor:
    return Tanh.apply(a)


def sigmoid(a: Tensor) -> Tensor:
    return Sigmoid.apply(a)


def abs(a: Tensor) -> Tensor:  # noqa: A001 - PyTorch's name
    return Abs.apply(a)


def clamp(a: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
    return Clamp.apply(a, low=min, high=max)


# ---- selection ----------------------------------------------------------------------------------------------------
class Where(Function):
    """cond ? a : b. The condition is a bool tensor; gradient goes to the branch that was taken."""

    def forward(self, cond, a, b):
        self.save_for_backward(cond)
        return self.xp.where(cond, a, b)

    def backward(self, grad):
        cond = self.saved[0]
        zero = self.xp.zeros((), dtype=grad.dtype)
        grad_a = self.xp.where(cond, grad, zero) if self.needs_input_grad[1] else None
        grad_b = self.xp.where(cond, zero, grad) if self.needs_input_grad[2] else None
        return None, grad_a, grad_b


def where(cond, a, b) -> Tensor:
    """Elementwise choice; `a`/`b` may be Python scalars (weak, taking the other branch's dtype)."""
    return _where(cond, a, b, "where")


def _where(cond, a, b, op: str) -> Tensor:
    cond = lift(cond)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = lift(a, Tensor._wrap(cond.xp.zeros((), dtype=backend.DEFAULT_FLOAT)))
    a, b = operands(a, b)
    for first, second in ((cond, a), (cond, b), (a, b)):  # pairwise agreement on every axis is broadcastability
        check_broadcastable(op, first, second)
    return Where.apply(cond, a, b)


def masked_fill(a: Tensor, mask, value) -> Tensor:
    """Replace entries where `mask` is True by `value` (mask broadcasts against a)."""
    return _where(mask, value, a, "masked_fill")


class Extremum(Function):
    """Elementwise max or min of two tensors; on ties the gradient is shared equally (a valid subgradient)."""

    def forward(self, a, b, larger=True):
        a_wins = a > b if larger else a < b
        self.save_for_backward(self.xp.where(a == b, 0.5, a_wins).astype(a.dtype))
        return self.xp.maximum(a, b) if larger else self.xp.minimum(a, b)

    def backward(self, grad):
        share_a = self.saved[0]
        return grad * share_a, grad * (1 - share_a)


def maximum(a, b) -> Tensor:
    a, b = operands(a, b)
    check_broadcastable("maximum", a, b)
    return Extremum.apply(a, b, larger=True)


def minimum(a, b) -> Tensor:
    a, b = operands(a, b)
    check_broadcastable("minimum", a, b)
    return Extremum.apply(a, b, larger=False)


# ---- comparisons and logic (no gradient) -------------------------------------------------------------------------
def _compare(op, a, b) -> Tensor:
    a, b = operands(a, b)
    return Tensor._wrap(op(a.data, b.data))


def eq(a, b) -> Tensor:
    return _compare(lambda x, y: x == y, a, b)


def ne(a, b) -> Tensor:
    return _compare(lambda x, y: x != y, a, b)


def lt(a, b) -> Tensor:
    return _compare(lambda x, y: x < y, a, b)


def le(a, b) -> Tensor:
    return _compare(lambda x, y: x <= y, a, b)


def gt(a, b) -> Tensor:
    return _compare(lambda x, y: x > y, a, b)


def ge(a, b) -> Tensor:
    return _compare(lambda x, y: x >= y, a, b)


def logical_not(a: Tensor) -> Tensor:
    return Tensor._wrap(~a.data if a.dtype == backend.bool_ else a.data == 0)


def logical_and(a, b) -> Tensor:
    return _compare(lambda x, y: x.astype(bool) & y.astype(bool), a, b)


def logical_or(a, b) -> Tensor:
    return _compare(lambda x, y: x.astype(bool) | y.astype(bool), a, b)


def logical_xor(a, b) -> Tensor:
    return _compare(lambda x, y: x.astype(bool) ^ y.astype(bool), a, b)


def isfinite(a: Tensor) -> Tensor:
    return Tensor._wrap(a.xp.isfinite(a.data))


# ---- dtype and device ---------------------------------------------------------------------------------------------
class Cast(Function):
    def forward(self, a, dtype=None):
        self.source_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.source_dtype)

    def graph_backward(self, grad):
        return cast(grad, self.source_dtype)


class ToDevice(Function):
    """The only differentiable host↔device copy: forward moves the data, backward moves the gradient back."""

    def forward(self, a, device="cpu"):
        self.source_device = backend.device_of(a)
        return backend.to_device(a, device)

    def backward(self, grad):
        return backend.to_device(grad, self.source_device)

    def graph_backward(self, grad):
        return to_device(grad, self.source_device)


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, grad):
        return grad


def cast(a: Tensor, dtype) -> Tensor:
    dtype = backend.as_dtype(dtype)
    if a.dtype == dtype:
        return a
    if not backend.is_floating(dtype) or not backend.is_floating(a.dtype):
        return Tensor._wrap(a.data.astype(dtype))
    return Cast.apply(a, dtype=dtype)


def to_device(a: Tensor, device: str) -> Tensor:
    return ToDevice.apply(a, device=device)


def clone(a: Tensor) -> Tensor:
    return Clone.apply(a)
