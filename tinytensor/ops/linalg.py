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
