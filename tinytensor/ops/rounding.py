"""Division that rounds: floor_divide (`//`), remainder (`%`) and fmod, with PyTorch's names and signs.

    floor_divide(a, b) = floor(a / b)                 Python's //
    remainder(a, b)    = a − b · floor(a / b)         Python's %: the sign of the divisor b
    fmod(a, b)         = a − b · trunc(a / b)         C's fmod: the sign of the dividend a

All three take tensors or Python numbers on either side and broadcast, with the dtype rules of `+` (ints stay ints,
weak Python scalars). Integer division by zero raises ZeroDivisionError (PyTorch raises too; NumPy would return 0
with a warning; on a GPU the error comes with the next transfer to the host, `backend.check_later`). Float
division by zero gives inf or nan, as in PyTorch.

Gradients: the quotient is piecewise constant, so floor_divide's gradient is zero wherever it exists (as for
PyTorch's `div(rounding_mode="floor")`): a graph through `x // n` runs backward and passes nothing. For the remainders
d/da = 1 and d/db = −q, with q the rounded quotient the forward used (floor for remainder, trunc for fmod); at the
jumps (a/b an integer) the gradient is that of one side's piece.
"""
from __future__ import annotations

from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops._util import check_broadcastable, operands
from tinytensor.tensor import Tensor


class FloorDivide(Function):
    def forward(self, a, b):
        return self.xp.floor_divide(a, b)

    def backward(self, grad):
        zeros = self.xp.zeros_like(grad)
        return (zeros if self.needs_input_grad[0] else None), (zeros if self.needs_input_grad[1] else None)


class Remainder(Function):
    """a − b·floor(a/b): d/da = 1, d/db = −floor(a/b)."""

    def forward(self, a, b):
        out = self.xp.remainder(a, b)
        self.save_for_backward(self.xp.floor_divide(a, b) if self.needs_input_grad[1] else None)
        return out

    def backward(self, grad):
        quotient = self.saved[0]
        return grad, (-grad * quotient if quotient is not None else None)


class Fmod(Function):
    """a − b·trunc(a/b): d/da = 1, d/db = −trunc(a/b), recovered exactly from the output as (a − out) / b."""

    def forward(self, a, b):
        out = self.xp.fmod(a, b)
        self.save_for_backward(self.xp.rint((a - out) / b) if self.needs_input_grad[1] else None)
        return out

    def backward(self, grad):
        quotient = self.saved[0]
        return grad, (-grad * quotient if quotient is not None else None)


def _rounding(function: type[Function], op: str, a, b) -> Tensor:
    a, b = operands(a, b)
    check_broadcastable(op, a, b)
    if not backend.is_floating(b.dtype) and b.numel():
        zero_divisor = (b.data == 0).any()
        if b.device != "cpu":  # read with the next transfer to the host: no synchronisation of its own
            backend.check_later(zero_divisor, ZeroDivisionError(f"{op}: integer division by zero (detected on the "
                                                                "GPU, after the op ran)"))
        elif zero_divisor:
            raise ZeroDivisionError(f"{op}: integer division by zero (the divisor holds a 0)")
    return function.apply(a, b)


def floor_divide(input, other) -> Tensor:  # noqa: A002 - PyTorch's names
    """torch.floor_divide, `a // b`: floor(a / b), Python's rounding (toward −∞), in the inputs' dtype."""
    return _rounding(FloorDivide, "floor_divide", input, other)


def remainder(input, other) -> Tensor:  # noqa: A002 - PyTorch's names
    """torch.remainder, `a % b`: a − b·floor(a / b), Python's modulus, with the sign of the divisor."""
    return _rounding(Remainder, "remainder", input, other)


def fmod(input, other) -> Tensor:  # noqa: A002 - PyTorch's names
    """torch.fmod: a − b·trunc(a / b), C's remainder, with the sign of the dividend."""
    return _rounding(Fmod, "fmod", input, other)
