"""tinytensor.linalg: PyTorch's `torch.linalg` names (norms, inverse, solve, determinants, Cholesky, eigh, svdvals).

Sits above `ops/` (it builds on matmul, the reductions and the shape ops) and is reached as `tinytensor.linalg`
after `import tinytensor`. Every function takes a matrix or a batch of them, `[..., n, n]`, works on NumPy or CuPy
arrays alike (LAPACK or cuSOLVER does the factorisation) and has an analytic backward, written beside its forward
with the formula it uses. Norms that are plain reductions are composed from existing ops, which is exact.

Multi-output ops (`slogdet`, `eigh`) factorise once and hand each differentiable output its own graph node (the
engine's nodes have one output each); the gradients of the outputs add up, as the chain rule says.

Second derivatives (`create_graph=True`, `gradgradcheck`): inv, solve, det, slogdet and cholesky write their
backward with `self.xp`, so under create_graph it runs on Tensors (`GraphXp.linalg` is this module) and is itself
differentiable. eigh and svdvals save factors that are not inputs or outputs of their node, so their backward
cannot be recorded; they raise `NotImplementedError` under create_graph instead of giving a wrong answer.

Errors: a non-square input where a square one is needed raises `ValueError` naming the op and the shape; a
singular matrix (inv, solve, det's backward) or one that is not positive-definite (cholesky) raises
`tinytensor.linalg.LinAlgError`, a `RuntimeError` as PyTorch's `torch.linalg.LinAlgError` is, and also a
`numpy.linalg.LinAlgError`, so either habit catches it. On a GPU (CuPy does not check) the factorisation's NaN/inf
is detected without a synchronisation and raised with the next transfer to the host (`backend.check_later`).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops import reduce as reductions
from tinytensor.ops import shape as shapes
from tinytensor.ops._util import dim_index, lift, operands, require_floating
from tinytensor.ops.elementwise import abs as absolute
from tinytensor.ops.elementwise import cast
from tinytensor.tensor import Tensor

__all__ = ["LinAlgError", "cholesky", "det", "eigh", "eigvalsh", "inv", "matrix_norm", "norm", "slogdet", "solve",
           "svdvals", "vector_norm"]


class LinAlgError(RuntimeError, numpy.linalg.LinAlgError):
    """A matrix that the factorisation cannot handle: singular (inv, solve) or not positive-definite (cholesky).
    A RuntimeError as PyTorch's torch.linalg.LinAlgError, and a numpy.linalg.LinAlgError too."""


class SlogdetResult(NamedTuple):
    """torch.linalg.slogdet's result: det(A) = sign · exp(logabsdet)."""

    sign: Tensor
    logabsdet: Tensor


class EighResult(NamedTuple):
    """torch.linalg.eigh's result: A = V · diag(eigenvalues) · Vᵀ, eigenvalues ascending, V = eigenvectors."""

    eigenvalues: Tensor
    eigenvectors: Tensor


# ---- checks and the one place LAPACK errors are translated --------------------------------------------------------
def _square(op: str, a) -> Tensor:
    """`a` as a floating-point Tensor of shape [..., n, n], else an error naming `op` and the shape."""
    a = lift(a)
    require_floating(op, a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{op}: A must be a square matrix or a batch of them [..., n, n], got shape {a.shape}")
    return a


def _matrix(op: str, a) -> Tensor:
    a = lift(a)
    require_floating(op, a)
    if a.ndim < 2:
        raise ValueError(f"{op}: A must be a matrix or a batch of them [..., m, n], got shape {a.shape}")
    return a


def _factorise(op: str, problem: str, xp, function, *arrays):
    """Run an array-module factorisation; its LinAlgError becomes tinytensor's, naming `op` and the problem.
    CuPy does not raise, so on a GPU a non-finite first result is flagged for the next transfer to the host."""
    try:
        out = function(*arrays)
    except numpy.linalg.LinAlgError as error:
        raise LinAlgError(f"{op}: {problem} ({error})") from None
    if xp is not numpy:
        first = out[0] if isinstance(out, tuple) else out
        backend.check_later(~xp.isfinite(first).all(), LinAlgError(f"{op}: {problem} (non-finite result on the "
                                                                     "GPU)"))
    return out


SINGULAR = "a matrix is singular (not invertible); check for linearly dependent rows, or add a small multiple of " \
           "the identity"


class _NoDoubleBackward:
    """Mixin for ops whose backward uses saved factors that are not inputs or outputs of their node: recording it
    under create_graph would treat those factors as constants and give wrong second derivatives."""

    def graph_backward(self, grad):
        raise NotImplementedError(f"{self.op}: second derivatives (create_graph=True) are not implemented")


# ---- norms (composed: exact, and their backward comes from the reductions) ----------------------------------------
def _dims(dim) -> tuple | int | None:
    return tuple(dim) if isinstance(dim, list) else dim


def vector_norm(x, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002 - PyTorch's names
    """torch.linalg.vector_norm: (Σ|x|^ord)^(1/ord) over `dim` (all elements when None, whatever x's shape).

    ord = inf / -inf is max / min |x| (tied elements share the gradient, as PyTorch); ord = 0 counts non-zero
    entries (no gradient); any other ord is the formula above, p ≥ 1 through the fused `norm` reduction, whose
    gradient sign(x)·|x|^(p−1)/‖x‖^(p−1) is 0 at x = 0.
    """
    x = lift(x)
    require_floating("vector_norm", x)
    if dtype is not None:
        x = cast(x, dtype)
    dim = _dims(dim)
    if isinstance(ord, str):
        raise ValueError(f"vector_norm: ord must be a number, got {ord!r} (matrix norms: linalg.matrix_norm)")
    if ord == math.inf:
        return reductions.amax(absolute(x), dim, keepdim)
    if ord == -math.inf:
        return reductions.amin(absolute(x), dim, keepdim)
    if ord == 0:
        return cast(reductions.sum(x != 0, dim, keepdim), x.dtype)
    if ord >= 1:
        return reductions.norm(x, ord, dim, keepdim)
    return reductions.sum(absolute(x) ** ord, dim, keepdim) ** (1.0 / ord)


MATRIX_ORDS = ("fro", "nuc", math.inf, -math.inf, 1, -1, 2, -2)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002, N803
    """torch.linalg.matrix_norm over the two axes `dim` of A [..., m, n]:
    'fro' √Σa², 'nuc' Σσ (sum of singular values), 2 / -2 largest / smallest σ, 1 / -1 max / min column sum of
    |a|, inf / -inf max / min row sum of |a|. The σ-based ones differentiate through `svdvals`."""
    A = lift(A)
    require_floating("matrix_norm", A)
    if dtype is not None:
        A = cast(A, dtype)
    if ord not in MATRIX_ORDS:
        raise ValueError(f"matrix_norm: ord must be one of {MATRIX_ORDS}, got {ord!r}")
    if len(dim) != 2:
        raise ValueError(f"matrix_norm: dim must name two axes, got {dim}")
    rows, cols = (dim_index("matrix_norm", d, A.shape) for d in dim)
    if rows == cols:
        raise ValueError(f"matrix_norm: dim must name two different axes, got {dim}")
    if ord == "fro":
        return reductions.norm(A, 2.0, (rows, cols), keepdim)
    kept_shape = tuple(1 if i in (rows, cols) else n for i, n in enumerate(A.shape))
    if ord in ("nuc", 2, -2):
        singular_values = svdvals(shapes.movedim(A, (rows, cols), (-2, -1)))
        out = {"nuc": lambda s: s.sum(-1), 2: lambda s: reductions.amax(s, -1),
               -2: lambda s: reductions.amin(s, -1)}[ord](singular_values)
        return out.reshape(kept_shape) if keepdim else out
    summed, extreme = (rows, cols) if ord in (1, -1) else (cols, rows)
    pick = reductions.amax if ord > 0 else reductions.amin
    out = pick(reductions.sum(absolute(A), summed, keepdim=True), extreme, keepdim=True)
    return out if keepdim else out.reshape([n for i, n in enumerate(A.shape) if i not in (rows, cols)])


def norm(A, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002, N803 - PyTorch's
    """torch.linalg.norm: a vector norm when `dim` is one axis, a matrix norm when it is two; with dim=None, the
    2-norm of all elements when ord is None, else a vector norm of a 1-D A or a matrix norm of a 2-D A."""
    A = lift(A)
    dim = _dims(dim)
    if isinstance(dim, int) or (isinstance(dim, tuple) and len(dim) == 1):
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if isinstance(dim, tuple):
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    raise ValueError(f"norm: with ord={ord!r} and dim=None, A must be 1-D or 2-D, got shape {A.shape}; "
                     "pass dim")


# ---- inverse, solve ---------------------------------------------------------------------------------------------
class Inv(Function):
    """Y = A⁻¹. dY = −A⁻¹·dA·A⁻¹, so dL/dA = −Yᵀ·G·Yᵀ (G = dL/dY): two matmuls with the saved output."""

    def forward(self, a):
        out = _factorise("inv", SINGULAR, self.xp, self.xp.linalg.inv, a)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (inverse,) = self.saved
        inverse_t = inverse.swapaxes(-1, -2)
        return -self.xp.matmul(self.xp.matmul(inverse_t, grad), inverse_t)


def inv(A) -> Tensor:  # noqa: N803 - PyTorch's name
    """torch.linalg.inv: A⁻¹ of A [..., n, n]; a singular A raises tinytensor.linalg.LinAlgError."""
    return Inv.apply(_square("inv", A))


class Solve(Function):
    """X = A⁻¹·B for A [..., n, n], B [..., n, k] (batch axes broadcast).

    dX = A⁻¹(dB − dA·X), so dL/dB = A⁻ᵀ·G (one more solve, with Aᵀ) and dL/dA = −(dL/dB)·Xᵀ.
    """

    def forward(self, a, b):
        batch = numpy.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        xp = self.xp
        out = _factorise("solve", SINGULAR, xp, xp.linalg.solve, xp.broadcast_to(a, batch + a.shape[-2:]),
                         xp.broadcast_to(b, batch + b.shape[-2:]))
        self.save_for_backward(a if True in self.needs_input_grad else None, out if self.needs_input_grad[0] else None)
        return out

    def backward(self, grad):
        a, solution = self.saved
        xp = self.xp
        a_t = xp.broadcast_to(a.swapaxes(-1, -2), grad.shape[:-2] + a.shape[-2:])
        grad_b = xp.linalg.solve(a_t, grad)
        grad_a = -xp.matmul(grad_b, solution.swapaxes(-1, -2)) if self.needs_input_grad[0] else None
        return grad_a, grad_b if self.needs_input_grad[1] else None


def solve(A, B, *, left: bool = True) -> Tensor:  # noqa: N803 - PyTorch's names
    """torch.linalg.solve: X with A·X = B (left=False: X·A = B), for A [..., n, n].

    B is a batch of vectors [..., n] when it is 1-D or its shape is A.shape[:-1] (PyTorch's rule), else a batch of
    matrices [..., n, k]; batch axes broadcast. A singular A raises tinytensor.linalg.LinAlgError.
    """
    A, B = operands(_square("solve", A), B)
    n = A.shape[-1]
    vector = B.ndim == 1 or B.shape == A.shape[:-1]
    if not left:
        if vector:
            return solve(A.mT, B)
        if B.ndim < 2 or B.shape[-1] != n:
            raise ValueError(f"solve: with left=False B must be [..., k, {n}] for A of shape {A.shape}, got {B.shape}")
        return solve(A.mT, B.mT).mT
    if vector:
        if B.shape[-1] != n:
            raise ValueError(f"solve: B of shape {B.shape} does not fit A of shape {A.shape} (expected [..., {n}])")
        return Solve.apply(A, shapes.unsqueeze(B, -1))[..., 0]
    if B.ndim < 2 or B.shape[-2] != n:
        raise ValueError(f"solve: B of shape {B.shape} does not fit A of shape {A.shape} (expected [..., {n}] or "
                         f"[..., {n}, k])")
    try:
        numpy.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    except ValueError:
        raise ValueError(f"solve: batch shapes of A {A.shape} and B {B.shape} cannot be broadcast together") from None
    return Solve.apply(A, B)


# ---- determinants -------------------------------------------------------------------------------------------------
def _inverse_for_backward(op: str, xp, a):
    """A⁻¹ inside a determinant's backward (differentiable under create_graph, where xp.linalg is this module)."""
    try:
        return xp.linalg.inv(a)
    except numpy.linalg.LinAlgError:
        raise LinAlgError(f"{op}: the gradient at a singular matrix is not implemented (it is the cofactor matrix; "
                          "the formula used needs A⁻¹)") from None


class Det(Function):
    """det(A). Jacobi's formula: d det = det·tr(A⁻¹dA), so dL/dA = g·det·A⁻ᵀ.

    At an exactly singular A the forward gives 0 but the backward raises LinAlgError (the true gradient there is
    the cofactor matrix, which PyTorch computes through an SVD); a nearly singular A gives large but finite values.
    """

    def forward(self, a):
        determinant = self.xp.linalg.det(a)
        self.save_for_backward(a, determinant)
        return determinant

    def backward(self, grad):
        a, determinant = self.saved
        inverse = _inverse_for_backward("det", self.xp, a)
        return (grad * determinant)[..., None, None] * inverse.swapaxes(-1, -2)


def det(A) -> Tensor:  # noqa: N803 - PyTorch's name
    """torch.linalg.det of A [..., n, n] → [...]."""
    return Det.apply(_square("det", A))


class LogAbsDet(Function):
    """log|det A|. d log|det A| = tr(A⁻¹dA), so dL/dA = g·A⁻ᵀ (singular A: see `Det`)."""

    def forward(self, a, result=None):
        self.save_for_backward(a)
        return result

    def backward(self, grad):
        (a,) = self.saved
        return grad[..., None, None] * _inverse_for_backward("slogdet", self.xp, a).swapaxes(-1, -2)


def slogdet(A) -> SlogdetResult:  # noqa: N803 - PyTorch's name
    """torch.linalg.slogdet: (sign, logabsdet) with det A = sign·exp(logabsdet), without overflow for large n.
    sign has no gradient; a singular A gives sign 0 and logabsdet −inf."""
    A = _square("slogdet", A)
    sign, logabsdet = A.xp.linalg.slogdet(A.data)
    return SlogdetResult(Tensor._wrap(sign), LogAbsDet.apply(A, result=logabsdet))


# ---- Cholesky -----------------------------------------------------------------------------------------------------
class Cholesky(Function):
    """L with A = L·Lᵀ, L lower-triangular (A symmetric positive-definite; only its lower triangle is read).

    Backward (Murray 2016, "Differentiation of the Cholesky decomposition", eq. 10; PyTorch's cholesky_backward):
    P = Φ(Lᵀ·Ḡ), Φ = lower triangle with the diagonal halved; S = L⁻ᵀ·P·L⁻¹; dL/dA = (S + Sᵀ)/2, the symmetric
    gradient (right for symmetric perturbations of A, as PyTorch's). Uses only L, the output, so it differentiates
    twice.
    """

    def forward(self, a):
        out = _factorise("cholesky", "a matrix is not positive-definite", self.xp, self.xp.linalg.cholesky, a)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (lower,) = self.saved
        xp, n = self.xp, lower.shape[-1]
        halve_diagonal = 1.0 - 0.5 * xp.eye(n, dtype=lower.dtype)
        phi = xp.tril(xp.matmul(lower.swapaxes(-1, -2), grad)) * halve_diagonal
        lower_inv = xp.linalg.inv(lower)
        s = xp.matmul(xp.matmul(lower_inv.swapaxes(-1, -2), phi), lower_inv)
        return (s + s.swapaxes(-1, -2)) * 0.5


def cholesky(A, *, upper: bool = False) -> Tensor:  # noqa: N803 - PyTorch's name
    """torch.linalg.cholesky: L [..., n, n] with A = L·Lᵀ (upper=True: U = Lᵀ with A = Uᵀ·U). A matrix that is not
    positive-definite raises tinytensor.linalg.LinAlgError."""
    lower = Cholesky.apply(_square("cholesky", A))
    return lower.mT if upper else lower


# ---- symmetric eigendecomposition ---------------------------------------------------------------------------------
class EigenValues(_NoDoubleBackward, Function):
    """λ of A = V·diag(λ)·Vᵀ: dλᵢ = vᵢᵀ·dA·vᵢ, so dL/dA = V·diag(ḡ)·Vᵀ (defined at repeated eigenvalues too)."""

    op = "eigh"

    def forward(self, a, result=None):
        values, vectors = result
        self.save_for_backward(vectors)
        return values

    def backward(self, grad):
        (vectors,) = self.saved
        return self.xp.matmul(vectors * grad[..., None, :], vectors.swapaxes(-1, -2))


class EigenVectors(_NoDoubleBackward, Function):
    """V of A = V·diag(λ)·Vᵀ (standard result, e.g. Giles 2008; PyTorch's linalg_eig_backward, Hermitian case):
    dL/dA = V·(skew(Vᵀ·Ḡ) / E)·Vᵀ with skew(X) = (X − Xᵀ)/2 and E_ij = λⱼ − λᵢ (off the diagonal; 0 on it).

    With repeated eigenvalues the eigenvectors are not unique and 1/(λⱼ − λᵢ) is infinite: the gradient is inf or
    NaN unless the loss does not depend on the choice of basis inside the eigenspace (as PyTorch).
    """

    op = "eigh"

    def forward(self, a, result=None):
        values, vectors = result
        self.save_for_backward(values, vectors)
        return vectors

    def backward(self, grad):
        values, vectors = self.saved
        xp = self.xp
        projected = xp.matmul(vectors.swapaxes(-1, -2), grad)
        skew = (projected - projected.swapaxes(-1, -2)) * 0.5
        gaps = values[..., None, :] - values[..., :, None]
        n = values.shape[-1]
        off_diagonal = 1.0 - xp.eye(n, dtype=values.dtype)
        scaled = skew * off_diagonal / (gaps + xp.eye(n, dtype=values.dtype))
        return xp.matmul(xp.matmul(vectors, scaled), vectors.swapaxes(-1, -2))


def eigh(A, UPLO: str = "L") -> EighResult:  # noqa: N803 - PyTorch's names
    """torch.linalg.eigh: eigenvalues (ascending, [..., n]) and orthonormal eigenvectors (columns, [..., n, n]) of
    a symmetric A, reading its lower ('L') or upper ('U') triangle. The gradients are symmetric, as PyTorch's."""
    A = _square("eigh", A)
    if UPLO not in ("L", "U"):
        raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    result = A.xp.linalg.eigh(A.data, UPLO=UPLO)
    return EighResult(EigenValues.apply(A, result=result), EigenVectors.apply(A, result=result))


def eigvalsh(A, UPLO: str = "L") -> Tensor:  # noqa: N803 - PyTorch's names
    """torch.linalg.eigvalsh: the eigenvalues of eigh, ascending; their gradient is fine at repeated eigenvalues."""
    A = _square("eigvalsh", A)
    if UPLO not in ("L", "U"):
        raise ValueError(f"eigvalsh: UPLO must be 'L' or 'U', got {UPLO!r}")
    return EigenValues.apply(A, result=A.xp.linalg.eigh(A.data, UPLO=UPLO))


# ---- singular values ----------------------------------------------------------------------------------------------
class SingularValues(_NoDoubleBackward, Function):
    """σ of A = U·diag(σ)·Vᵀ (reduced SVD): dσᵢ = uᵢᵀ·dA·vᵢ, so dL/dA = U·diag(ḡ)·Vᵀ (for distinct σ > 0)."""

    op = "svdvals"

    def forward(self, a):
        left, values, right_t = self.xp.linalg.svd(a, full_matrices=False)
        self.save_for_backward(left, right_t)
        return values

    def backward(self, grad):
        left, right_t = self.saved
        return self.xp.matmul(left * grad[..., None, :], right_t)


def svdvals(A) -> Tensor:  # noqa: N803 - PyTorch's name
    """torch.linalg.svdvals: the singular values of A [..., m, n], descending, [..., min(m, n)]."""
    return SingularValues.apply(_matrix("svdvals", A))


def __getattr__(name: str):
    """PyTorch's torch.linalg names that tinytensor does not have yet: one line saying so."""
    if name in ("qr", "svd", "eig", "eigvals", "lstsq", "pinv", "matrix_rank", "matrix_power", "matrix_exp", "lu",
                "lu_factor", "ldl_factor", "cond", "cross", "householder_product", "tensorinv", "tensorsolve",
                "solve_triangular", "inv_ex", "cholesky_ex", "solve_ex", "multi_dot", "vecdot", "diagonal",
                "vander", "matmul"):
        raise AttributeError(f"tinytensor.linalg.{name} is not implemented (see docs/pytorch.md, linear algebra)")
    raise AttributeError(f"module 'tinytensor.linalg' has no attribute {name!r}")
