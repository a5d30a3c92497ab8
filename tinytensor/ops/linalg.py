"""Matrix multiplication: batched, broadcasting, and NumPy's 1-D rules (vector·matrix, matrix·vector, dot).

For C = A·B the gradients are dA = dC·Bᵀ and dB = Aᵀ·dC, each one BLAS call. A 1-D operand is treated as a
row (left) or column (right) matrix for the backward, then that axis is dropped again.
"""
from __future__ import annotations

from tinytensor.autograd import Function
from tinytensor.ops._util import operands
from tinytensor.tensor import Tensor


class MatMul(Function):
    def forward(self, a, b):
        self.save_for_backward(a if self.needs_input_grad[1] else None, b if self.needs_input_grad[0] else None)
        self.a_is_vector, self.b_is_vector = a.ndim == 1, b.ndim == 1
        return self.xp.matmul(a, b)

    def backward(self, grad):
        a, b = self.saved
        if self.b_is_vector:
            grad, b = grad[..., None], (b[:, None] if b is not None else None)
        if self.a_is_vector:
            grad, a = grad[..., None, :], (a[None, :] if a is not None else None)
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = self.xp.matmul(grad, b.swapaxes(-1, -2))
            grad_a = grad_a[..., 0, :] if self.a_is_vector else grad_a
        if self.needs_input_grad[1]:
            grad_b = self.xp.matmul(a.swapaxes(-1, -2), grad)
            grad_b = grad_b[..., 0] if self.b_is_vector else grad_b
        return grad_a, grad_b


def matmul(a, b) -> Tensor:
    """a @ b with NumPy's semantics; a mismatch names both shapes."""
    a, b = operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dimension, got {a.shape} and {b.shape}")
    inner_a, inner_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align ({inner_a} != {inner_b})")
    return MatMul.apply(a, b)


class Linear(Function):
    """y = x·Wᵀ + b for x [..., in], W [out, in], b [out]: one GEMM forward and one per gradient backward.

    All leading axes are folded into one, so dW = dyᵀ·x is a single [out, N]·[N, in] product instead of a
    batched product followed by a sum, and the bias gradient is one column sum.
    """

    def forward(self, x, weight, bias=None):
        self.input_shape = x.shape
        rows = x.reshape(-1, x.shape[-1])
        self.save_for_backward(rows if self.needs_input_grad[1] else None, weight if self.needs_input_grad[0] else None)
        out = rows @ weight.T
        if bias is not None:
            out += bias
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, grad):
        rows, weight = self.saved
        grad_rows = grad.reshape(-1, grad.shape[-1])
        grad_x = (grad_rows @ weight).reshape(self.input_shape) if self.needs_input_grad[0] else None
        grad_weight = grad_rows.T @ rows if self.needs_input_grad[1] else None
        grad_bias = None
        if len(self.needs_input_grad) == 3 and self.needs_input_grad[2]:
            grad_bias = self.xp.ones(grad_rows.shape[0], dtype=grad.dtype) @ grad_rows  # column sums, one GEMV
        return grad_x, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """torch.nn.functional.linear: x [..., in] · weight [out, in]ᵀ + bias [out]."""
    if x.ndim == 0 or weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input {x.shape} does not fit weight {weight.shape} "
                         f"(expected [..., {weight.shape[-1]}])")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias {bias.shape} does not fit weight {weight.shape}")
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: input dtype {x.dtype} differs from weight dtype {weight.dtype}")
    return Linear.apply(x, weight, *([bias] if bias is not None else []))
