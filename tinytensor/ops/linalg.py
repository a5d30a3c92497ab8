"""Matrix multiplication: batched, broadcasting, and NumPy's 1-D rules (vector·matrix, matrix·vector, dot); einsum;
and PyTorch's strict forms of it (mm, bmm, mv, dot, outer, addmm, baddbmm), each a checked call of matmul.

For C = A·B the gradients are dA = dC·Bᵀ and dB = Aᵀ·dC, each one BLAS call. A 1-D operand is treated as a
row (left) or column (right) matrix for the backward, then that axis is dropped again. einsum's backward is an
einsum too: each operand's gradient contracts the output gradient with the other operands.
"""
from __future__ import annotations

import functools
import string

from tinytensor.autograd import Function
from tinytensor.ops._util import cast_tensor, operands, result_dtype
from tinytensor.ops.shape import stack, unbind
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
    return _aligned_matmul("matmul", a, b)


def _aligned_matmul(op: str, a: Tensor, b: Tensor) -> Tensor:
    """MatMul of two operands of at least one axis, once a's last axis is known to match b's contracted one."""
    inner_a, inner_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not align ({inner_a} != {inner_b})")
    return MatMul.apply(a, b)


def _strict_matmul(op: str, a, b, ndims: tuple[int, int], expected: str) -> Tensor:
    """matmul for operands of exactly `ndims` axes (PyTorch's mm, bmm, mv, dot broadcast nothing)."""
    a, b = operands(a, b)
    if (a.ndim, b.ndim) != ndims:
        raise ValueError(f"{op}: expected {expected}, got {a.shape} and {b.shape}")
    return _aligned_matmul(op, a, b)


def mm(input, mat2) -> Tensor:  # noqa: A002 - PyTorch's names
    """[n, m] · [m, p] → [n, p]."""
    return _strict_matmul("mm", input, mat2, (2, 2), "2-D tensors")


def bmm(input, mat2) -> Tensor:  # noqa: A002 - PyTorch's names
    """[B, n, m] · [B, m, p] → [B, n, p]: one product per batch entry, with equal batch sizes (no broadcasting)."""
    input, mat2 = operands(input, mat2)
    if input.ndim == mat2.ndim == 3 and input.shape[0] != mat2.shape[0]:
        raise ValueError(f"bmm: batch sizes differ, got {input.shape} and {mat2.shape}")
    return _strict_matmul("bmm", input, mat2, (3, 3), "3-D tensors")


def mv(input, vec) -> Tensor:  # noqa: A002 - PyTorch's names
    """[n, m] · [m] → [n]."""
    return _strict_matmul("mv", input, vec, (2, 1), "a 2-D matrix and a 1-D vector")


def dot(input, other) -> Tensor:  # noqa: A002 - PyTorch's names
    """Σ aᵢ·bᵢ of two 1-D tensors of one length, a 0-d tensor."""
    return _strict_matmul("dot", input, other, (1, 1), "1-D tensors")


def outer(input, vec2) -> Tensor:  # noqa: A002 - PyTorch's names
    """[n] ⊗ [m] → [n, m], entry (i, j) = aᵢ·bⱼ."""
    input, vec2 = operands(input, vec2)
    if input.ndim != 1 or vec2.ndim != 1:
        raise ValueError(f"outer: expected 1-D tensors, got {input.shape} and {vec2.shape}")
    return input.reshape(-1, 1) * vec2


def addmm(input, mat1, mat2, *, beta=1, alpha=1) -> Tensor:  # noqa: A002 - PyTorch's names
    """beta·input + alpha·(mat1 · mat2), input broadcast to [n, p]."""
    return _add_scaled("addmm", input, mm(mat1, mat2), beta, alpha)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1) -> Tensor:  # noqa: A002 - PyTorch's names
    """beta·input + alpha·(batch1 · batch2) per batch entry, input broadcast to [B, n, p]."""
    return _add_scaled("baddbmm", input, bmm(batch1, batch2), beta, alpha)


def _add_scaled(op: str, input, product: Tensor, beta, alpha) -> Tensor:  # noqa: A002 - PyTorch's name
    """beta·input + alpha·product. input must broadcast to the product's shape without growing it; beta = 0
    ignores input's values (NaN and inf included), as PyTorch does."""
    input, product = operands(input, product)
    fits = input.ndim <= product.ndim and all(n in (1, m) for n, m in zip(reversed(input.shape),
                                                                          reversed(product.shape)))
    if not fits:
        raise ValueError(f"{op}: input of shape {input.shape} cannot be broadcast to the product's shape "
                         f"{product.shape}")
    scaled = product if alpha == 1 else product * alpha
    if beta == 0:
        return scaled
    return (input if beta == 1 else input * beta) + scaled


class Linear(Function):
    """y = x·Wᵀ + b for x [..., in], W [out, in], b [out]: one GEMM forward and one per gradient backward.

    All leading axes are folded into one, so dW = dyᵀ·x is a single [out, N]·[N, in] product instead of a
    batched product followed by a sum, and the bias gradient is one column sum.
    """

    def forward(self, x, weight, bias=None):
        self.input_shape = x.shape
        rows = x.reshape(-1, x.shape[-1])
        self.save_for_backward(x if self.needs_input_grad[1] else None, weight if self.needs_input_grad[0] else None)
        out = rows @ weight.T
        if bias is not None:
            out += bias
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, grad):
        x, weight = self.saved
        rows = x.reshape(-1, x.shape[-1]) if x is not None else None
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


class Einsum(Function):
    """Einstein summation over operands with subscripts `inputs` ("ij", "jk", "...ij") into `output`.

    The gradient of operand k is einsum(output, other operands -> inputs[k]): the output gradient contracted with
    everything k was multiplied by. A letter that only operand k has (summed away in the forward) cannot be made
    by that einsum, so a vector of ones with that letter joins it: its gradient is the same everywhere along it.
    A letter repeated in operand k (a diagonal "ii->i", a trace "ii->") is renamed and tied back by an identity
    matrix (`_distinct_letters`), so the gradient lands on the diagonal only.
    """

    def forward(self, *arrays, inputs=(), output=""):
        self.inputs, self.output = inputs, output
        self.save_for_backward(*arrays)
        return self.xp.einsum(",".join(inputs) + "->" + output, *arrays)

    def backward(self, grad):
        return tuple(self._operand_grad(grad, k) if needed else None for k, needed in enumerate(self.needs_input_grad))

    def _operand_grad(self, grad, k: int):
        target, deltas = _distinct_letters(target := self.inputs[k], self.saved[k].shape,
                                           set("".join(self.inputs) + self.output))
        letters = target.replace("...", "")
        others = [(s, a) for i, (s, a) in enumerate(zip(self.inputs, self.saved)) if i != k]
        eyes = [(pair, self.xp.eye(size, dtype=grad.dtype)) for pair, size in deltas]
        present = set(self.output).union(*(s for s, _ in others + eyes))
        alone = [c for c in letters if c not in present]
        ones = [self.xp.ones(_letter_size(target, self.saved[k].shape, c), dtype=grad.dtype) for c in alone]
        subscripts = [self.output, *(s for s, _ in others + eyes), *alone]
        return self.xp.einsum(",".join(subscripts) + "->" + target, grad, *(a for _, a in others + eyes), *ones)


def _distinct_letters(subscripts: str, shape: tuple, used: set) -> tuple[str, list]:
    """An operand's subscripts with each repeat of a letter renamed to a fresh one ("ii" → "iA"), and the
    identity matrices δ that tie each fresh letter to its original ([("iA", n)]): a diagonal or a trace reads only
    where the repeated indices agree, so its gradient is the plain one times δ."""
    fresh = (c for c in string.ascii_letters if c not in used)
    seen, deltas, renamed = set(), [], []
    for position, letter in enumerate(subscripts):
        if letter.isalpha() and letter in seen:
            new = next(fresh)
            deltas.append((letter + new, shape[_axis_of(subscripts, position, len(shape))]))
            letter = new
        seen.add(letter)
        renamed.append(letter)
    return "".join(renamed), deltas


def _axis_of(subscripts: str, position: int, ndim: int) -> int:
    """The axis that the character at `position` of an operand's subscripts names (after '...': from the end)."""
    head, ellipsis, tail = subscripts.partition("...")
    return position if position < len(head) else ndim - (len(subscripts) - position)


def _letter_size(subscripts: str, shape: tuple, letter: str) -> int:
    """The size of the axis `letter` names in an operand of `shape` (letters after '...' count from the end)."""
    head, ellipsis, tail = subscripts.partition("...")
    if letter in head:
        return shape[head.index(letter)]
    return shape[len(shape) - len(tail) + tail.index(letter)]


def _implicit_output(inputs: list[str]) -> str:
    """NumPy's and PyTorch's output for an equation without '->': '...' if used, then the letters that appear
    once, in alphabetical order."""
    letters = "".join(inputs).replace("...", "")
    once = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return ("..." if any("..." in s for s in inputs) else "") + once


def einsum(equation: str, *operands) -> Tensor:
    """torch.einsum(equation, *operands) (or a list of operands): any contraction NumPy's einsum does, with
    '...' for broadcast axes; operands of different float dtypes meet in the wider one."""
    tensors = list(operands[0]) if len(operands) == 1 and isinstance(operands[0], (list, tuple)) else list(operands)
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]  # arrays join as constants
    inputs_part, arrow, output = equation.replace(" ", "").partition("->")
    inputs = inputs_part.split(",")
    if len(inputs) != len(tensors):
        raise ValueError(f"einsum: {equation!r} names {len(inputs)} operands, got {len(tensors)}")
    dtype = functools.reduce(result_dtype, [t.dtype for t in tensors])
    tensors = [t if t.dtype == dtype else cast_tensor(t, dtype) for t in tensors]
    return Einsum.apply(*tensors, inputs=tuple(inputs), output=output if arrow else _implicit_output(inputs))


def kron(a: Tensor, b: Tensor) -> Tensor:
    """The Kronecker product: block (i, j) of the result is a[i, j]·b (any ndim; the fewer-dimensional operand
    gets leading axes of size 1)."""
    ndim = max(a.ndim, b.ndim)
    a, b = a.reshape(*(1,) * (ndim - a.ndim), *a.shape), b.reshape(*(1,) * (ndim - b.ndim), *b.shape)
    interleaved_a = a.reshape(*[n for size in a.shape for n in (size, 1)])
    interleaved_b = b.reshape(*[n for size in b.shape for n in (1, size)])
    return (interleaved_a * interleaved_b).reshape(*[m * n for m, n in zip(a.shape, b.shape)])


def cross(a: Tensor, b: Tensor, dim: int = -1) -> Tensor:
    """The cross product of 3-vectors along `dim` (broadcasting the rest)."""
    if a.shape[dim] != 3 or b.shape[dim] != 3:
        raise ValueError(f"cross: dim {dim} must have size 3 in both, got {a.shape} and {b.shape}")
    (a1, a2, a3), (b1, b2, b3) = unbind(a, dim), unbind(b, dim)
    return stack([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1], dim)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0) -> Tensor:
    """The p-norm distance between every row of x1 [..., P, M] and every row of x2 [..., R, M] → [..., P, R]."""
    from tinytensor import linalg

    if x1.shape[-1] != x2.shape[-1]:
        raise ValueError(f"cdist: rows of x1 {x1.shape} and x2 {x2.shape} must have the same length")
    differences = x1.reshape(*x1.shape[:-1], 1, x1.shape[-1]) - x2.reshape(*x2.shape[:-2], 1, *x2.shape[-2:])
    return linalg.vector_norm(differences, ord=p, dim=-1)
