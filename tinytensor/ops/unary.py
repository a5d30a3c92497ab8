"""More unary math with PyTorch's names: trigonometry, logarithms near 1 and in other bases, rounding, one-sided
clamps; and the value tests isnan, isinf, isclose, allclose, equal.

Ops with a derivative of their own are `Function`s (forward and backward side by side, like `ops/elementwise.py`);
the rest are a line of existing ops (reciprocal = 1 / a, frac = a − trunc(a)), so their gradients, second
derivatives and GPU support come from those ops. floor, ceil, round, trunc and sign are piecewise constant: their
gradient is zero wherever it exists, and PyTorch passes zeros, so they do too. The value tests return bool
tensors (or Python bools) and carry no gradient.
"""
from __future__ import annotations

import math

from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops._util import check_broadcastable, operands
from tinytensor.ops.elementwise import abs as absolute
from tinytensor.ops.elementwise import cast, clamp, clone, div, exp, log, maximum, mul, neg, sqrt, sub
from tinytensor.tensor import Tensor


# ---- smooth functions ---------------------------------------------------------------------------------------------
class Sin(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.sin(a)

    def backward(self, grad):
        return grad * self.xp.cos(self.saved[0])


class Cos(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.cos(a)

    def backward(self, grad):
        return -grad * self.xp.sin(self.saved[0])


class Log1p(Function):
    """log(1 + a), exact for tiny a where 1 + a would round to 1."""

    def forward(self, a):
        self.save_for_backward(a)
        return self.xp.log1p(a)

    def backward(self, grad):
        return grad / (1 + self.saved[0])


class Expm1(Function):
    """eᵃ − 1, exact for tiny a; d/da = eᵃ = out + 1."""

    def forward(self, a):
        out = self.xp.expm1(a)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        return grad * (self.saved[0] + 1)


class LogBase(Function):
    """log₂ or log₁₀ with NumPy's own functions (exact at powers of the base); d/da = 1 / (a · ln base)."""

    def forward(self, a, base=2):
        self.save_for_backward(a)
        self.ln_base = math.log(base)
        return self.xp.log2(a) if base == 2 else self.xp.log10(a)

    def backward(self, grad):
        return grad / (self.saved[0] * self.ln_base)


class Tan(Function):
    """tan a; d/da = 1 + tan² a (from the saved output)."""

    def forward(self, a):
        out = self.xp.tan(a)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        return grad * (1 + self.saved[0] * self.saved[0])


class InverseTrig(Function):
    """asin, acos or atan: d/da = ±1/√(1 − a²) for the first two, 1/(1 + a²) for atan."""

    def forward(self, a, which="asin"):
        self.which = which
        self.save_for_backward(a)
        return {"asin": self.xp.arcsin, "acos": self.xp.arccos, "atan": self.xp.arctan}[which](a)

    def backward(self, grad):
        a = self.saved[0]
        if self.which == "atan":
            return grad / (1 + a * a)
        slope = (1 - a * a) ** -0.5
        return grad * slope if self.which == "asin" else -grad * slope


class Hyperbolic(Function):
    """sinh or cosh; each is the other's derivative."""

    def forward(self, a, which="sinh"):
        self.which = which
        self.save_for_backward(a)
        return self.xp.sinh(a) if which == "sinh" else self.xp.cosh(a)

    def backward(self, grad):
        a = self.saved[0]
        return grad * (self.xp.cosh(a) if self.which == "sinh" else self.xp.sinh(a))


class Atan2(Function):
    """The angle of the point (x, y): atan2(y, x) in (−π, π]; ∂/∂y = x/r², ∂/∂x = −y/r²."""

    def forward(self, y, x):
        self.save_for_backward(y, x)
        return self.xp.arctan2(y, x)

    def backward(self, grad):
        y, x = self.saved
        scale = grad / (x * x + y * y)
        return scale * x, -scale * y


def sin(a: Tensor) -> Tensor:
    return Sin.apply(_floating(a))


def tan(a: Tensor) -> Tensor:
    return Tan.apply(_floating(a))


def asin(a: Tensor) -> Tensor:
    return InverseTrig.apply(_floating(a), which="asin")


def acos(a: Tensor) -> Tensor:
    return InverseTrig.apply(_floating(a), which="acos")


def atan(a: Tensor) -> Tensor:
    return InverseTrig.apply(_floating(a), which="atan")


def sinh(a: Tensor) -> Tensor:
    return Hyperbolic.apply(_floating(a), which="sinh")


def cosh(a: Tensor) -> Tensor:
    return Hyperbolic.apply(_floating(a), which="cosh")


def atan2(input, other) -> Tensor:  # noqa: A002 - PyTorch's name
    """torch.atan2(y, x), broadcasting."""
    y, x = operands(input, other)
    check_broadcastable("atan2", y, x)
    return Atan2.apply(_floating(y), _floating(x))


def logaddexp(input, other) -> Tensor:  # noqa: A002 - PyTorch's name
    """log(eᵃ + eᵇ) without overflow: max(a, b) + log1p(e^−|a − b|)."""
    a, b = operands(input, other)
    return maximum(a, b) + log1p(exp(neg(absolute(sub(a, b)))))


def hypot(input, other) -> Tensor:  # noqa: A002 - PyTorch's name
    """√(a² + b²)."""
    a, b = operands(input, other)
    return sqrt(mul(a, a) + mul(b, b))


def logit(input: Tensor, eps: float | None = None) -> Tensor:  # noqa: A002 - PyTorch's name
    """log(p / (1 − p)), with p clamped to [eps, 1 − eps] when `eps` is given."""
    p = clamp(input, eps, 1 - eps) if eps is not None else input
    return log(div(p, 1 - p))


def cos(a: Tensor) -> Tensor:
    return Cos.apply(_floating(a))


def log1p(a: Tensor) -> Tensor:
    return Log1p.apply(_floating(a))


def expm1(a: Tensor) -> Tensor:
    return Expm1.apply(_floating(a))


def log2(a: Tensor) -> Tensor:
    return LogBase.apply(_floating(a), base=2)


def log10(a: Tensor) -> Tensor:
    return LogBase.apply(_floating(a), base=10)


def reciprocal(a: Tensor) -> Tensor:
    """1 / a (integers give floats, as in PyTorch)."""
    return div(1, a)


def square(a: Tensor) -> Tensor:
    return mul(a, a)


def _floating(a: Tensor) -> Tensor:
    """Integer inputs of transcendental functions compute in the default float dtype, as in PyTorch."""
    return a if backend.is_floating(a.dtype) else cast(a, backend.DEFAULT_FLOAT)


# ---- rounding and sign: piecewise constant ------------------------------------------------------------------------
class PiecewiseConstant(Function):
    """floor, ceil, trunc, sign (`kind`: the array module's function of that name) or round to `decimals` places
    (half to even, as PyTorch). The gradient is zero: the derivative wherever it exists."""

    def forward(self, a, kind="floor", decimals=0):
        return self.xp.round(a, decimals) if kind == "round" else getattr(self.xp, kind)(a)

    def backward(self, grad):
        return self.xp.zeros(grad.shape, dtype=grad.dtype)


def _piecewise_constant(a: Tensor, kind: str, decimals: int = 0) -> Tensor:
    if kind != "sign" and decimals == 0 and not backend.is_floating(a.dtype):
        return clone(a)  # integers are already whole; NumPy's floor of an int would return floats
    return PiecewiseConstant.apply(a, kind=kind, decimals=decimals)


def floor(a: Tensor) -> Tensor:
    return _piecewise_constant(a, "floor")


def ceil(a: Tensor) -> Tensor:
    return _piecewise_constant(a, "ceil")


def trunc(a: Tensor) -> Tensor:
    """Round toward zero."""
    return _piecewise_constant(a, "trunc")


def round(a: Tensor, decimals: int = 0) -> Tensor:  # noqa: A001 - PyTorch's name
    """Round half to even (2.5 → 2, as PyTorch), to `decimals` places (negative: tens, hundreds, …)."""
    return _piecewise_constant(a, "round", decimals)


def sign(a: Tensor) -> Tensor:
    """−1, 0 or 1 by the sign of each element."""
    return _piecewise_constant(a, "sign")


def frac(a: Tensor) -> Tensor:
    """a − trunc(a), keeping a's sign; gradient 1."""
    return sub(a, trunc(a))


def clamp_min(a: Tensor, min) -> Tensor:  # noqa: A002 - PyTorch's name
    return clamp(a, min=min)


def clamp_max(a: Tensor, max) -> Tensor:  # noqa: A002 - PyTorch's name
    return clamp(a, max=max)


# ---- value tests (no gradient) ------------------------------------------------------------------------------------
def isnan(a: Tensor) -> Tensor:
    return Tensor._wrap(a.xp.isnan(a.data))


def isinf(a: Tensor) -> Tensor:
    """True at +inf and −inf."""
    return Tensor._wrap(a.xp.isinf(a.data))


def isclose(a, b, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """|a − b| ≤ atol + rtol·|b| elementwise (broadcasting), as a bool tensor; NaNs are equal only with
    equal_nan."""
    a, b = operands(a, b)
    check_broadcastable("isclose", a, b)
    xp = backend.array_module(a.data, b.data, op="isclose")
    return Tensor._wrap(xp.isclose(a.data, b.data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(a, b, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """Whether `isclose` holds everywhere, as a Python bool."""
    return bool(isclose(a, b, rtol, atol, equal_nan).data.all())


def equal(a, b) -> bool:
    """True when a and b have the same shape and the same values (NaN equals nothing), as a Python bool."""
    a, b = operands(a, b)
    xp = backend.array_module(a.data, b.data, op="equal")
    return a.shape == b.shape and bool(xp.array_equal(a.data, b.data))
