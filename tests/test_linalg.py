"""tinytensor.linalg (torch.linalg's names): forwards against numpy.linalg, backwards against finite differences.

Drawn matrices are well-conditioned by construction: I + 0.25·M for general ones (singular values in [0.25, 1.75]
for entries of M in [-1, 1] and n ≤ 3), M·Mᵀ + n·I for symmetric positive-definite ones, and Q·diag(d)·Qᵀ with
well-separated d where eigenvalues must be distinct (finite differences of a repeated eigenvalue are meaningless).
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (arrays, broadcastable_shapes, check_forward, check_gradient, check_op, distinct_arrays,
                        op_settings, scaled_examples, tensor)

import tinytensor as tt

sizes = st.integers(1, 3)
batches = st.lists(st.integers(1, 2), max_size=2).map(tuple)


def general(m: np.ndarray) -> np.ndarray:
    """I + 0.25·M: invertible and well-conditioned for entries of M in [-1, 1] and n ≤ 3."""
    return np.eye(m.shape[-1]) + 0.25 * m


def spd(m: np.ndarray) -> np.ndarray:
    return m @ m.swapaxes(-1, -2) + m.shape[-1] * np.eye(m.shape[-1])


def symmetrised(x: tt.Tensor) -> tt.Tensor:
    """(X + Xᵀ)/2: eigh and cholesky read one triangle and give symmetric gradients, so they are checked through
    this map, as PyTorch's own tests do."""
    return (x + x.mT) * 0.5


@st.composite
def general_matrices(draw, batch=None):
    n = draw(sizes, label="n")
    batch = draw(batches, label="batch") if batch is None else batch
    return general(draw(arrays((*batch, n, n), -1.0, 1.0), label="M"))


@st.composite
def spd_matrices(draw):
    n, batch = draw(sizes, label="n"), draw(batches, label="batch")
    return spd(draw(arrays((*batch, n, n), -1.0, 1.0), label="M"))


@st.composite
def distinct_spectrum_matrices(draw, symmetric: bool = True):
    """Q·diag(d)·Qᵀ (symmetric) or Q·diag(d)·Pᵀ, with entries of d at least 0.25 apart and, for the second, > 0.5."""
    n, batch = draw(sizes, label="n"), draw(batches, label="batch")
    left = np.linalg.qr(general(draw(arrays((*batch, n, n), -1.0, 1.0), label="M")))[0]
    right = left if symmetric else np.linalg.qr(general(draw(arrays((*batch, n, n), -1.0, 1.0), label="N")))[0]
    spectrum = draw(distinct_arrays((*batch, n), spacing=0.5, center=0.0 if symmetric else 2.0), label="d")
    return (left * spectrum[..., None, :]) @ right.swapaxes(-1, -2)


# ---- norms -------------------------------------------------------------------------------------------------------
def numpy_vector_norm(x, ord, dim, keepdim):  # noqa: A002
    axes = tuple(range(x.ndim)) if dim is None else dim
    magnitude = np.abs(x)
    if ord == math.inf:
        return magnitude.max(axis=axes, keepdims=keepdim)
    if ord == -math.inf:
        return magnitude.min(axis=axes, keepdims=keepdim)
    if ord == 0:
        return (x != 0).sum(axis=axes, keepdims=keepdim).astype(x.dtype)
    return (magnitude ** ord).sum(axis=axes, keepdims=keepdim) ** (1 / ord)


@pytest.mark.parametrize("ord", [2, 1, 3, 0.5, math.inf, -math.inf])
@op_settings
@given(data=st.data())
def test_vector_norm_matches_numpy_and_finite_differences(ord, device, data):  # noqa: A002
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple), label="shape")
    size = math.prod(shape)  # magnitudes ≥ 0.1 (|x|^p is not smooth at 0) and distinct (no ties for inf norms)
    magnitudes = data.draw(distinct_arrays(shape, spacing=0.3, center=0.25 + 0.15 * size), label="|x|")
    x = magnitudes * np.where(data.draw(hnp.arrays(np.bool_, shape), label="negative"), -1.0, 1.0)
    dim = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1) | st.just(tuple(range(len(shape)))))
    keepdim = data.draw(st.booleans(), label="keepdim")
    check_op(lambda t: tt.linalg.vector_norm(t, ord, dim, keepdim), lambda a: numpy_vector_norm(a, ord, dim, keepdim),
             x, device=device)


def test_vector_norm_of_order_zero_counts_non_zero_entries():
    x = tt.tensor([[0.0, 2.0, -1.0], [0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(tt.linalg.vector_norm(x, 0, dim=1).numpy(), [2.0, 1.0])
    assert tt.linalg.vector_norm(x, 0).dtype == tt.float32


MATRIX_ORDS = ["fro", "nuc", 2, -2, 1, -1, math.inf, -math.inf]


@pytest.mark.parametrize("ord", MATRIX_ORDS)
@op_settings
@given(data=st.data())
def test_matrix_norm_matches_numpy_and_finite_differences(ord, device, data):  # noqa: A002
    a = data.draw(distinct_spectrum_matrices(symmetric=False), label="A")
    rng = np.random.default_rng(data.draw(st.integers(0, 100), label="seed"))
    a = a + rng.uniform(-0.05, 0.05, a.shape)  # no ties between row or column sums either
    keepdim = data.draw(st.booleans(), label="keepdim")
    dim = data.draw(st.sampled_from([(-2, -1), (-1, -2)] + ([(0, 2)] if a.ndim == 3 else [])), label="dim")
    check_op(lambda t: tt.linalg.matrix_norm(t, ord, dim, keepdim),
             lambda m: np.linalg.norm(m, ord, axis=dim, keepdims=keepdim), a, device=device, rtol64=1e-9)


@pytest.mark.parametrize("shape, ord, dim", [((4,), None, None), ((4,), math.inf, None), ((3, 4), None, None),
                                             ((3, 4), "nuc", None), ((3, 4), 1, None), ((2, 3, 4), None, None),
                                             ((2, 3, 4), 3, 1), ((2, 3, 4), None, (0, 2)), ((2, 3, 4), 2, (1,))])
def test_norm_dispatches_to_vector_or_matrix_norm_as_pytorch(device, shape, ord, dim):  # noqa: A002
    x = np.random.default_rng(0).standard_normal(shape)
    if ord is None and dim is None:
        expected = np.linalg.norm(x.reshape(-1))
    elif isinstance(dim, int) or (dim is not None and len(dim) == 1):
        expected = numpy_vector_norm(x, 2 if ord is None else ord, dim[0] if isinstance(dim, tuple) else dim, False)
    else:
        expected = np.linalg.norm(x, "fro" if ord is None else ord, axis=dim)
    check_forward(lambda t: tt.linalg.norm(t, ord, dim), lambda _: expected, x, device=device)
    check_gradient(lambda t: tt.linalg.norm(t, ord, dim), x, device=device)


# ---- inverse, solve, determinants ----------------------------------------------------------------------------------
@op_settings
@given(a=general_matrices())
def test_inv_matches_numpy_and_finite_differences(device, a):
    check_op(tt.linalg.inv, np.linalg.inv, a, device=device, rtol64=1e-9, atol64=1e-11)


@pytest.mark.parametrize("op", ["inv", "det", "logabsdet", "solve"])
@scaled_examples(0.4)
@given(a=general_matrices(), data=st.data())
def test_second_derivatives_of_inv_det_slogdet_and_solve_match_finite_differences(device, op, a, data):
    b = data.draw(arrays((*a.shape[:-1], 2)), label="B")
    fn = {"inv": tt.linalg.inv, "det": tt.linalg.det, "logabsdet": lambda t, _: tt.linalg.slogdet(t).logabsdet,
          "solve": tt.linalg.solve}[op]
    inputs = [tensor(a, device, tt.float64, requires_grad=True), tensor(b, device, tt.float64, requires_grad=True)]
    call = (lambda t, u: fn(t, u)) if op in ("solve", "logabsdet") else (lambda t, u: fn(t) * 1.0 + 0 * u.sum())
    assert tt.gradgradcheck(call, inputs)


@op_settings
@given(data=st.data())
def test_solve_with_matrix_right_hand_sides_broadcasts_batches(device, data):
    a_batch, b_batch = data.draw(broadcastable_shapes(2, max_dims=2, max_side=2), label="batches")
    n, k = data.draw(sizes, label="n"), data.draw(sizes, label="k")
    a = general(data.draw(arrays((*a_batch, n, n), -1.0, 1.0), label="M"))
    b = data.draw(arrays((*b_batch, n, k)), label="B")
    assume(b.shape != a.shape[:-1])  # that B is a batch of vectors, by PyTorch's rule (tested below)
    check_op(tt.linalg.solve, _numpy_solve, a, b, device=device, rtol64=1e-9, atol64=1e-11)


def _numpy_solve(a, b):
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return np.linalg.solve(np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:]))


@pytest.mark.parametrize("case", ["1-D", "batch of vectors", "left=False matrix", "left=False vector"])
@op_settings
@given(a=general_matrices(batch=(2,)), data=st.data())
def test_solve_treats_vectors_and_left_false_as_pytorch(device, case, a, data):
    n = a.shape[-1]
    b_shape = {"1-D": (n,), "batch of vectors": (2, n), "left=False matrix": (2, 3, n), "left=False vector": (n,)}
    b = data.draw(arrays(b_shape[case]), label="B")
    left = not case.startswith("left=False")
    if case == "1-D":
        reference = lambda m, r: np.linalg.solve(m, np.broadcast_to(r, (2, n))[..., None])[..., 0]  # noqa: E731
    elif case == "batch of vectors":
        reference = lambda m, r: np.linalg.solve(m, r[..., None])[..., 0]  # noqa: E731
    elif case == "left=False matrix":
        reference = lambda m, r: r @ np.linalg.inv(m)  # noqa: E731
    else:
        reference = lambda m, r: np.linalg.solve(m.mT, np.broadcast_to(r, (2, n))[..., None])[..., 0]  # noqa: E731
    check_op(lambda m, r: tt.linalg.solve(m, r, left=left), reference, a, b, device=device, rtol64=1e-9,
             atol64=1e-11)


@op_settings
@given(a=general_matrices())
def test_det_and_slogdet_match_numpy_and_finite_differences(device, a):
    a = a * np.where(np.arange(a.shape[-1]) == 0, -1.0, 1.0)  # a negative determinant too
    check_op(tt.linalg.det, np.linalg.det, a, device=device, rtol64=1e-9, atol64=1e-11)
    check_op(lambda t: tuple(tt.linalg.slogdet(t)), lambda m: tuple(np.linalg.slogdet(m)), a, device=device,
             rtol64=1e-9, atol64=1e-11)


def test_slogdet_is_a_named_tuple_whose_sign_has_no_gradient():
    a = tt.tensor([[2.0, 0.0], [0.0, -3.0]], dtype=tt.float64, requires_grad=True)
    sign, logabsdet = result = tt.linalg.slogdet(a)
    assert result.sign is sign and result.logabsdet is logabsdet
    assert sign.item() == -1.0 and not sign.requires_grad
    np.testing.assert_allclose(logabsdet.item(), np.log(6.0))
    logabsdet.backward()
    np.testing.assert_allclose(a.grad.numpy(), np.linalg.inv(a.numpy()).T)


# ---- Cholesky, eigh, svdvals ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("upper", [False, True])
@op_settings
@given(a=spd_matrices())
def test_cholesky_matches_numpy_and_finite_differences(upper, a):
    expected = np.linalg.cholesky(a)
    check_forward(lambda t: tt.linalg.cholesky(t, upper=upper),
                  lambda _: expected.swapaxes(-1, -2) if upper else expected, a, rtol64=1e-9, atol64=1e-11)
    check_gradient(lambda t: tt.linalg.cholesky(symmetrised(t), upper=upper), a)


def test_cholesky_has_second_derivatives():
    a = tt.tensor(spd(np.random.default_rng(1).uniform(-1, 1, (2, 3, 3))), requires_grad=True)
    assert tt.gradgradcheck(lambda t: tt.linalg.cholesky(symmetrised(t)), [a])


def sign_fixed(result):
    """Eigenvalues and eigenvectors with each eigenvector's sign chosen by a fixed generic direction w (wᵀv > 0):
    LAPACK may flip a sign between nearby matrices, which finite differences would read as a jump."""
    values, vectors = result
    direction = tt.tensor(np.array([1.0, 0.37, 0.71])[:vectors.shape[-1]], dtype=vectors.dtype).to(vectors.device)
    return values, vectors * tt.sign(direction @ vectors)[..., None, :]


@op_settings
@given(a=distinct_spectrum_matrices())
def test_eigh_matches_numpy_and_finite_differences(a):
    def numpy_sign_fixed(m):
        values, vectors = np.linalg.eigh(m)
        return values, vectors * np.sign(np.array([1.0, 0.37, 0.71])[:m.shape[-1]] @ vectors)[..., None, :]

    check_forward(lambda t: sign_fixed(tt.linalg.eigh(t)), numpy_sign_fixed, a, rtol64=1e-9,
                  atol64=1e-11, rtol32=1e-3, atol32=1e-4)
    check_gradient(lambda t: sign_fixed(tt.linalg.eigh(symmetrised(t))), a)
    check_gradient(lambda t: tt.linalg.eigvalsh(symmetrised(t), UPLO="U"), a)


def test_eigh_reads_only_the_triangle_uplo_names():
    a = np.array([[2.0, 100.0], [1.0, 3.0]])
    np.testing.assert_allclose(tt.linalg.eigh(tt.tensor(a)).eigenvalues.numpy(), np.linalg.eigvalsh(a, "L"))
    np.testing.assert_allclose(tt.linalg.eigvalsh(tt.tensor(a), UPLO="U").numpy(), np.linalg.eigvalsh(a, "U"))


def test_eigenvalue_gradient_is_v_diag_g_v_transposed():
    a = tt.tensor(spd(np.random.default_rng(2).uniform(-1, 1, (3, 3))), requires_grad=True)
    values, vectors = tt.linalg.eigh(a)
    (values * tt.tensor([1.0, 2.0, 3.0], dtype=tt.float64)).sum().backward()
    v = vectors.numpy()
    np.testing.assert_allclose(a.grad.numpy(), v @ np.diag([1.0, 2.0, 3.0]) @ v.T, atol=1e-12)


@op_settings
@given(a=distinct_spectrum_matrices(symmetric=False), data=st.data())
def test_svdvals_match_numpy_and_finite_differences(a, data):
    columns = data.draw(st.integers(1, a.shape[-1]), label="columns")  # wide and tall matrices too
    for matrix in (a[..., :columns], a[..., :columns, :]):
        check_op(tt.linalg.svdvals, lambda m: np.linalg.svd(m, compute_uv=False), matrix, rtol64=1e-9)


# ---- errors -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["inv", "det", "slogdet", "cholesky", "eigh", "eigvalsh"])
def test_a_non_square_matrix_is_refused_naming_the_op_and_the_shape(op):
    with pytest.raises(ValueError, match=rf"{op}: A must be a square matrix .* got shape \(2, 3\)"):
        getattr(tt.linalg, op)(tt.ones(2, 3))


@pytest.mark.parametrize("op", ["inv", "solve"])
def test_a_singular_matrix_raises_linalg_error_naming_the_op(device, op):
    singular = tensor(np.array([[1.0, 2.0], [2.0, 4.0]]), device)
    with pytest.raises(tt.linalg.LinAlgError, match=rf"^{op}: a matrix is singular") as caught:
        tt.linalg.inv(singular) if op == "inv" else tt.linalg.solve(singular, tensor(np.ones(2), device))
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, np.linalg.LinAlgError)


def test_cholesky_of_a_matrix_that_is_not_positive_definite_raises_linalg_error():
    with pytest.raises(tt.linalg.LinAlgError, match="cholesky: a matrix is not positive-definite"):
        tt.linalg.cholesky(tt.tensor([[1.0, 2.0], [2.0, 1.0]]))


def test_det_of_a_singular_matrix_is_zero_and_its_backward_says_why_it_cannot_go_on():
    a = tt.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=tt.float64, requires_grad=True)
    out = tt.linalg.det(a)
    assert out.item() == 0.0
    with pytest.raises(tt.linalg.LinAlgError, match="det: the gradient at a singular matrix"):
        out.backward()


@pytest.mark.parametrize("call, message", [
    (lambda: tt.linalg.solve(tt.ones(3, 3), tt.ones(4)), "does not fit A"),
    (lambda: tt.linalg.solve(tt.ones(2, 3, 3), tt.ones(4, 3, 1)), "cannot be broadcast"),
    (lambda: tt.linalg.norm(tt.ones(2, 2, 2), ord=2), "must be 1-D or 2-D"),
    (lambda: tt.linalg.matrix_norm(tt.ones(2, 2), ord=3), "ord must be one of"),
    (lambda: tt.linalg.vector_norm(tt.ones(2), ord="fro"), "ord must be a number"),
    (lambda: tt.linalg.eigh(tt.ones(2, 2), UPLO="X"), "UPLO must be"),
])
def test_bad_arguments_raise_one_line_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_integer_matrices_are_refused_with_a_hint():
    with pytest.raises(TypeError, match="inv: needs a floating-point input"):
        tt.linalg.inv(tt.tensor([[1, 0], [0, 1]]))


def test_missing_torch_linalg_names_say_they_are_not_implemented():
    with pytest.raises(AttributeError, match="tinytensor.linalg.qr is not implemented"):
        tt.linalg.qr(tt.ones(2, 2))


def test_eigh_refuses_second_derivatives_rather_than_giving_wrong_ones():
    a = tt.tensor(spd(np.eye(2)), requires_grad=True)
    (grad,) = tt.autograd.grad(tt.linalg.eigvalsh(a).sum(), [a], create_graph=False)
    np.testing.assert_allclose(grad.numpy(), np.eye(2))
    with pytest.raises(NotImplementedError, match="eigh: second derivatives"):
        tt.autograd.grad(tt.linalg.eigvalsh(a).sum(), [a], create_graph=True)


# ---- everyday PyTorch programs ------------------------------------------------------------------------------------
def test_least_squares_by_the_normal_equations_as_a_pytorch_user_writes_it():
    import tinytensor as torch

    torch.manual_seed(0)
    X = torch.randn(50, 3, dtype=torch.float64)  # noqa: N806
    true_w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    y = X @ true_w + 0.01 * torch.randn(50, dtype=torch.float64)
    w = torch.linalg.solve(X.T @ X, X.T @ y)
    expected = np.linalg.lstsq(X.numpy(), y.numpy(), rcond=None)[0]
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-10)
    residual = torch.linalg.norm(X @ w - y)
    np.testing.assert_allclose(residual.item(), np.linalg.norm(X.numpy() @ expected - y.numpy()), rtol=1e-10)


def test_gaussian_log_likelihood_through_cholesky_and_slogdet_fits_a_covariance():
    import tinytensor as torch

    rng = np.random.default_rng(0)
    true_cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    data = torch.tensor(rng.multivariate_normal([0.0, 0.0], true_cov, size=400))
    raw = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=0.05)

    def negative_log_likelihood():
        factor = torch.tril(raw, -1) + torch.exp(raw) * torch.tensor(np.eye(2))  # positive diagonal
        cov = factor @ factor.T + 1e-6 * torch.tensor(np.eye(2))
        chol = torch.linalg.cholesky(cov)
        whitened = torch.linalg.solve(chol, data.T)  # L⁻¹x per sample
        logdet = torch.linalg.slogdet(cov).logabsdet
        return 0.5 * ((whitened ** 2).sum(0).mean() + logdet + 2 * math.log(2 * math.pi)), cov

    first, _ = negative_log_likelihood()
    for _ in range(300):
        optimizer.zero_grad()
        loss, cov = negative_log_likelihood()
        loss.backward()
        optimizer.step()
    sample_cov = np.cov(data.numpy().T, bias=True)
    assert loss.item() < first.item()
    np.testing.assert_allclose(cov.detach().numpy(), sample_cov, atol=0.02)
