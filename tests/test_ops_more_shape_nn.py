"""The shape ops, tensor-creation methods, nn.functional functions and nn modules added for PyTorch parity.

Shape ops (flip, unbind, select, narrow, movedim, unflatten, masked_select) and the differentiable functions
(softplus, logsigmoid, leaky_relu, elu, hardtanh, the losses, cosine_similarity) are checked as every op is: forward
against a NumPy formula in float64 and float32, backward against central finite differences (`check_op`), on every
backend. nonzero/argwhere and the new_* methods are checked against NumPy with edge cases; the numerically delicate
cases (logits of ±1e4, probabilities of exactly 0 and 1) and second derivatives get their own tests; each module is
checked equal to its functional form; errors name the op and what was wrong.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    arrays,
    axis,
    bool_masks,
    broadcastable_shapes,
    check_forward,
    check_op,
    grid_arrays,
    index_arrays,
    op_settings,
    scaled_examples,
    shapes,
    tensor,
)

import tinytensor as tt
import tinytensor.nn as nn  # noqa: PLR0402 - DESIGN.md spelling
import tinytensor.nn.functional as F

F64 = tt.float64
REDUCTIONS = ["mean", "sum", "none"]


def _reduce(loss: np.ndarray, reduction: str) -> np.ndarray:
    return {"mean": np.mean, "sum": np.sum, "none": np.asarray}[reduction](loss)


# ---- shape and selection -------------------------------------------------------------------------------------------
@op_settings
@given(data=st.data())
def test_flip_matches_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dims = data.draw(st.lists(axis(len(shape)), min_size=1, max_size=len(shape), unique_by=lambda d: d % len(shape)),
                     label="dims")
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.flip(dims), lambda x: np.flip(x, dims), x, device=device)
    check_op(lambda x: tt.flip(x, *dims), lambda x: np.flip(x, dims), x, device=device)


def test_flip_gives_a_contiguous_tensor_and_fliplr_flipud_follow_numpy():
    values = np.arange(24.0).reshape(2, 3, 4)
    x = tensor(values)
    assert x.flip(0).is_contiguous() and x.flip(0).view(-1).shape == (24,)
    np.testing.assert_array_equal(x.fliplr().numpy(), np.fliplr(values))
    np.testing.assert_array_equal(tt.flipud(x).numpy(), np.flipud(values))
    with pytest.raises(ValueError, match=r"fliplr: needs a tensor of at least 2 dims, got shape \(3,\)"):
        tt.zeros(3).fliplr()
    with pytest.raises(ValueError, match=r"flip: dims \(1, -2\) name the same axis twice"):
        x.flip(1, -2)


@op_settings
@given(data=st.data())
def test_unbind_select_and_narrow_match_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    size = shape[dim]
    index = data.draw(st.integers(-size, size - 1), label="index")
    start = data.draw(st.integers(-size, size), label="start")
    length = data.draw(st.integers(0, size - start % (size + 1) if start >= 0 else -start), label="length")
    begin = start + size if start < 0 else start
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.unbind(dim), lambda x: list(np.moveaxis(x, dim, 0)), x, device=device)
    check_op(lambda x: x.select(dim, index), lambda x: np.take(x, index, axis=dim), x, device=device)
    check_op(lambda x: tt.narrow(x, dim, start, length), lambda x: np.take(x, range(begin, begin + length), axis=dim),
             x, device=device)


@pytest.mark.parametrize("op, error, pattern", [
    (lambda x: x.select(1, 3), IndexError, r"select: index 3 is out of range for dim 1 of size 3"),
    (lambda x: x.select(3, 0), IndexError, r"select: dim 3 is out of range for shape \(2, 3, 4\)"),
    (lambda x: x.narrow(2, 3, 2), IndexError, r"narrow: start 3 \+ length 2 does not fit dim 2 of size 4"),
    (lambda x: x.narrow(0, -3, 1), IndexError, r"narrow: start -3 is out of range for dim 0 of size 2"),
    (lambda x: x.unbind(-4), IndexError, r"unbind: dim -4 is out of range for shape \(2, 3, 4\)"),
    (lambda x: x.transpose(0, 3), IndexError, r"transpose: dim 3 is out of range for shape \(2, 3, 4\) "
                                              r"\(dims run from -3 to 2\)"),
    (lambda x: x.permute(0, 1, 3), IndexError, r"permute: dim 3 is out of range"),
    (lambda x: x.movedim((0, 1), 2), ValueError, r"movedim: source \(0, 1\) and destination 2"),
    (lambda x: x.movedim((0, 0), (1, 2)), ValueError, r"movedim: dims \(0, 0\) name the same axis twice"),
    (lambda x: x.unflatten(2, (3, -1)), ValueError, r"unflatten: sizes \(3, -1\) do not fit dim 2 of size 4"),
    (lambda x: x.masked_select(tt.tensor([1, 0])), TypeError, r"masked_select: mask must be a bool tensor"),
    (lambda x: x.masked_select(tt.ones(3, dtype=tt.bool)), ValueError,
     r"masked_select: shapes \(2, 3, 4\) and \(3,\) cannot be broadcast"),
    (lambda x: x[0, 0].mT, ValueError, r"mT: needs a matrix or a batch of matrices .* got shape \(4,\)"),
    (lambda x: tt.tensor(1.0).select(0, 0), IndexError, r"select: dim 0 is out of range for shape \(\) "
                                                        r"\(a 0-d tensor has no dims\)"),
])
def test_bad_dims_and_ranges_name_the_op_the_dim_and_the_size(op, error, pattern):
    with pytest.raises(error, match=pattern):
        op(tt.zeros(2, 3, 4))


@op_settings
@given(data=st.data())
def test_movedim_matches_numpy_moveaxis_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=4, max_side=3), label="shape")
    count = data.draw(st.integers(1, len(shape)), label="count")
    source = data.draw(st.lists(axis(len(shape)), min_size=count, max_size=count, unique_by=lambda d: d % len(shape)),
                       label="source")
    destination = data.draw(st.lists(axis(len(shape)), min_size=count, max_size=count,
                                     unique_by=lambda d: d % len(shape)), label="destination")
    if count == 1 and data.draw(st.booleans(), label="as ints"):
        source, destination = source[0], destination[0]
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.movedim(source, destination), lambda x: np.moveaxis(x, source, destination), x,
             device=device)
    check_op(lambda x: tt.moveaxis(x, source, destination), lambda x: np.moveaxis(x, source, destination), x,
             device=device)


@op_settings
@given(data=st.data())
def test_unflatten_and_swapdims_match_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    sizes = (1, shape[dim]) if data.draw(st.booleans(), label="lead") else (shape[dim], -1)
    resolved = shape[:dim % len(shape)] + (1, shape[dim]) + shape[dim % len(shape) + 1:]
    other = data.draw(axis(len(shape)), label="other")
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.unflatten(dim, sizes), lambda x: x.reshape(resolved) if sizes[0] == 1 else
             x.reshape(shape[:dim % len(shape)] + (shape[dim], 1) + shape[dim % len(shape) + 1:]), x, device=device)
    check_op(lambda x: x.swapdims(dim, other), lambda x: np.swapaxes(x, dim, other), x, device=device)
    check_op(lambda x: tt.swapaxes(x, dim, other), lambda x: np.swapaxes(x, dim, other), x, device=device)


@op_settings
@given(data=st.data())
def test_masked_select_matches_numpy_boolean_indexing_after_broadcasting(device, data):
    x_shape, mask_shape = data.draw(broadcastable_shapes(2, min_dims=1), label="shapes")
    x = data.draw(arrays(x_shape), label="x")
    mask_values = data.draw(bool_masks(mask_shape), label="mask")
    mask = tensor(mask_values, device)
    out_shape = np.broadcast_shapes(x_shape, mask_shape)
    check_op(lambda x: x.masked_select(mask),
             lambda x: np.broadcast_to(x, out_shape)[np.broadcast_to(mask_values, out_shape)], x, device=device)


@pytest.mark.parametrize("values", [
    np.array([[0.0, 1.5, 0.0], [-2.0, 0.0, 3.0]]), np.zeros((2, 3)), np.array([True, False, True]),
    np.array(5), np.array(0.0), np.zeros((0, 3)), np.arange(24).reshape(2, 3, 4) % 3,
])
def test_nonzero_and_argwhere_match_numpy_and_give_int64_without_gradient(device, values):
    x = tensor(values, device)
    for found in (x.nonzero(), tt.argwhere(x), tt.nonzero(x)):
        assert found.dtype == tt.int64 and not found.requires_grad and found.device == x.device
        np.testing.assert_array_equal(found.numpy(), np.argwhere(values))
    per_axis = x.nonzero(as_tuple=True)
    expected = np.nonzero(np.atleast_1d(values))  # PyTorch treats a 0-d tensor as 1-D here
    assert len(per_axis) == len(expected)
    for got, want in zip(per_axis, expected):
        assert got.dtype == tt.int64
        np.testing.assert_array_equal(got.numpy(), want)


def test_transpose_property_reverses_every_axis_as_in_pytorch_and_numpy():
    values = np.arange(24.0).reshape(2, 3, 4)
    assert tensor(values).T.shape == (4, 3, 2)
    assert tensor(np.arange(3.0)).T.shape == (3,) and tensor(np.array(2.0)).T.shape == ()


# ---- tensor creation methods ---------------------------------------------------------------------------------------
def test_new_tensors_take_this_tensors_dtype_and_device_unless_given(device):
    x = tensor(np.ones((2, 2)), device, dtype=F64)
    made = {"new_zeros": x.new_zeros(2, 3), "new_ones": x.new_ones((2, 3)), "new_empty": x.new_empty(2, 3),
            "new_full": x.new_full((2, 3), 7.5)}
    for name, out in made.items():
        assert (out.shape, out.dtype, out.device, out.requires_grad) == ((2, 3), F64, x.device, False), name
    np.testing.assert_array_equal(made["new_zeros"].numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(made["new_ones"].numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(made["new_full"].numpy(), np.full((2, 3), 7.5))
    copied = x.new_tensor([1, 2])
    assert copied.dtype == F64 and copied.device == x.device and copied.tolist() == [1.0, 2.0]
    assert x.new_zeros(3, dtype=tt.int64).dtype == tt.int64
    assert x.new_ones(2, requires_grad=True).requires_grad
    assert x.new_tensor([1.0], device="cpu").device == "cpu"


def test_type_as_takes_the_other_tensors_dtype_and_device_and_keeps_the_gradient(device):
    x = tensor(np.array([1.0, 2.0]), dtype=tt.float32, requires_grad=True)
    other = tensor(np.zeros(1), device, dtype=F64)
    out = x.type_as(other)
    assert out.dtype == F64 and out.device == other.device
    (out * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    assert tt.tensor([1, 2]).type_as(tt.zeros(1)).dtype == tt.float32


def test_detach_in_place_cuts_the_tensor_from_the_graph_and_keeps_its_data():
    x = tensor(np.array([1.0, 2.0]), dtype=F64, requires_grad=True)
    hidden = x * 2
    assert hidden.detach_() is hidden
    assert hidden.is_leaf and not hidden.requires_grad
    np.testing.assert_array_equal(hidden.numpy(), [2.0, 4.0])
    leaf = tt.ones(2, requires_grad=True).detach_()
    assert not leaf.requires_grad


# ---- activations ---------------------------------------------------------------------------------------------------
def _softplus_reference(x, beta, threshold):
    return np.where(beta * x > threshold, x, np.logaddexp(0, beta * x) / beta)


@op_settings
@given(data=st.data())
def test_softplus_matches_numpy_and_finite_differences(device, data):
    beta = data.draw(st.sampled_from([1.0, 0.5, 3.0]), label="beta")
    threshold = data.draw(st.sampled_from([20.0, 1.0]), label="threshold")
    x = data.draw(arrays(shapes(max_dims=2), away_from=(threshold / beta,)), label="x")
    check_op(lambda x: F.softplus(x, beta, threshold), lambda x: _softplus_reference(x, beta, threshold), x,
             device=device)


@op_settings
@given(data=st.data())
def test_logsigmoid_leaky_relu_elu_and_hardtanh_match_numpy_and_finite_differences(device, data):
    slope = data.draw(st.sampled_from([0.01, 0.2, -0.5]), label="slope")
    alpha = data.draw(st.sampled_from([1.0, 0.3]), label="alpha")
    low, high = data.draw(st.sampled_from([(-1.0, 1.0), (-0.5, 1.5), (0.0, 6.0)]), label="bounds")
    x = data.draw(arrays(shapes(max_dims=2), -3, 3, away_from=(0.0, low, high)), label="x")
    check_op(F.logsigmoid, lambda x: -np.logaddexp(0, -x), x, device=device)
    check_op(lambda x: F.leaky_relu(x, slope), lambda x: np.where(x > 0, x, slope * x), x, device=device)
    check_op(lambda x: F.elu(x, alpha), lambda x: np.where(x > 0, x, alpha * np.expm1(x)), x, device=device)
    check_op(lambda x: F.hardtanh(x, low, high), lambda x: np.clip(x, low, high), x, device=device)


def test_activation_gradients_at_their_kinks_follow_pytorch():
    x = tensor(np.array([-1.0, 0.0, 1.0]), dtype=F64, requires_grad=True)
    for fn, expected in ((lambda x: F.leaky_relu(x, 0.1), [0.1, 0.1, 1.0]), (lambda x: F.elu(x, 2.0), [2 / np.e, 2, 1]),
                         (F.hardtanh, [0.0, 1.0, 0.0])):
        x.grad = None
        fn(x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [tt.float32, tt.float64])
def test_softplus_and_logsigmoid_stay_finite_and_exact_for_logits_of_1e4(dtype):
    x = tt.tensor([-1e4, -40.0, 40.0, 1e4], dtype=dtype, requires_grad=True)
    np.testing.assert_allclose(F.softplus(x, threshold=float("inf")).numpy(), [0.0, np.exp(-40.0), 40.0, 1e4],
                               rtol=1e-6)
    out = F.logsigmoid(x)
    np.testing.assert_allclose(out.numpy(), [-1e4, -40.0, -np.exp(-40.0), 0.0], rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0, np.exp(-40.0), 0.0], rtol=1e-6)
    assert out.dtype == dtype and np.isfinite(x.grad.numpy()).all()


def test_softplus_second_derivative_matches_finite_differences():
    x = tensor(np.array([-2.0, -0.3, 0.4, 1.9]), dtype=F64, requires_grad=True)
    assert tt.gradgradcheck(lambda x: F.softplus(x, 2.0, 3.0), [x])
    assert tt.gradgradcheck(F.logsigmoid, [x])


# ---- losses --------------------------------------------------------------------------------------------------------
@op_settings
@given(data=st.data())
def test_l1_smooth_l1_and_huber_losses_match_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(max_dims=2), label="shape")
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    width = data.draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]), label="beta")
    x = data.draw(grid_arrays(shape), label="input")  # x − y is never within 0.1 of 0 (the kink of |x − y|)
    y = data.draw(grid_arrays(shape, offset=0.1), label="target")

    def smooth(distance, beta):
        return distance if beta == 0 else np.where(distance < beta, 0.5 * distance**2 / beta, distance - 0.5 * beta)

    check_op(lambda x, y: F.l1_loss(x, y, reduction), lambda x, y: _reduce(np.abs(x - y), reduction), x, y,
             device=device)
    check_op(lambda x, y: F.smooth_l1_loss(x, y, reduction, beta=width),
             lambda x, y: _reduce(smooth(np.abs(x - y), width), reduction), x, y, device=device)
    delta = width or 1.5
    check_op(lambda x, y: F.huber_loss(x, y, reduction, delta=delta),
             lambda x, y: _reduce(delta * smooth(np.abs(x - y), delta), reduction), x, y, device=device)


def _bce_reference(x, t, weight=None):
    loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100))
    return loss if weight is None else loss * weight


@op_settings
@given(data=st.data())
def test_binary_cross_entropy_matches_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(max_dims=2), label="shape")
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    probs = data.draw(arrays(shape, 0.05, 0.95), label="input")
    target = data.draw(arrays(shape, 0.0, 1.0), label="target")
    check_op(lambda x, t: F.binary_cross_entropy(x, t, reduction=reduction),
             lambda x, t: _reduce(_bce_reference(x, t), reduction), probs, target, device=device)
    weight = data.draw(arrays(shape[-1:], 0.1, 2.0), label="weight")
    check_op(lambda x, t, w: F.binary_cross_entropy(x, t, w, reduction),
             lambda x, t, w: _reduce(_bce_reference(x, t, w), reduction), probs, target, weight, device=device)


def test_binary_cross_entropy_at_probabilities_0_and_1_clamps_the_log_and_keeps_gradients_finite():
    x = tensor(np.array([0.0, 1.0, 0.0, 1.0]), dtype=F64, requires_grad=True)
    target = tensor(np.array([1.0, 0.0, 0.0, 1.0]), dtype=F64)
    loss = F.binary_cross_entropy(x, target, reduction="none")
    np.testing.assert_array_equal(loss.numpy(), [100.0, 100.0, 0.0, 0.0])
    loss.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1e12, 1e12, 0.0, 0.0])  # PyTorch's (x − t)/max(x(1 − x), 1e-12)


def test_binary_cross_entropy_second_derivative_and_target_gradient_match_finite_differences():
    x = tensor(np.array([0.2, 0.7, 0.5]), dtype=F64, requires_grad=True)
    target = tensor(np.array([0.0, 1.0, 0.3]), dtype=F64, requires_grad=True)
    assert tt.gradgradcheck(lambda x, t: F.binary_cross_entropy(x, t, reduction="none"), [x, target])


@op_settings
@given(data=st.data())
def test_binary_cross_entropy_with_logits_matches_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=2), label="shape")
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    logits = data.draw(arrays(shape, -4, 4), label="input")
    target = data.draw(arrays(shape, 0.0, 1.0), label="target")
    weight = data.draw(arrays(shape, 0.1, 2.0), label="weight")
    pos_weight = data.draw(arrays(shape[-1:], 0.1, 3.0), label="pos_weight")

    def reference(x, t, w, p):
        sigmoid = 1 / (1 + np.exp(-x))
        return _reduce(-w * (p * t * np.log(sigmoid) + (1 - t) * np.log(1 - sigmoid)), reduction)

    check_op(lambda x, t, w, p: F.binary_cross_entropy_with_logits(x, t, w, reduction, pos_weight=p), reference,
             logits, target, weight, pos_weight, device=device)
    check_op(lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
             lambda x, t: reference(x, t, 1.0, 1.0), logits, target, device=device)


@pytest.mark.parametrize("dtype", [tt.float32, tt.float64])
def test_binary_cross_entropy_with_logits_of_1e4_is_finite_and_exact(dtype):
    logits = tt.tensor([1e4, -1e4, 1e4, -1e4], dtype=dtype, requires_grad=True)
    target = tt.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=tt.tensor(2.0, dtype=dtype))
    np.testing.assert_array_equal(loss.numpy(), [0.0, 0.0, 1e4, 2e4])
    loss.sum().backward()
    np.testing.assert_array_equal(logits.grad.numpy(), [0.0, 0.0, 1.0, -2.0])
    assert loss.dtype == dtype


@op_settings
@given(data=st.data())
def test_kl_div_matches_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=2), label="shape")
    reduction = data.draw(st.sampled_from(["mean", "batchmean", "sum", "none"]), label="reduction")
    log_q = data.draw(arrays(shape, -3, 0), label="input")
    target = data.draw(arrays(shape, 0.05, 1.0), label="target")

    def reduce(loss):
        return loss.sum() / shape[0] if reduction == "batchmean" else _reduce(loss, reduction)

    check_op(lambda q, t: F.kl_div(q, t, reduction), lambda q, t: reduce(t * (np.log(t) - q)), log_q, target,
             device=device)
    check_op(lambda q, t: F.kl_div(q, t, reduction, log_target=True), lambda q, t: reduce(np.exp(t) * (t - q)),
             log_q, np.log(target), device=device)


def test_kl_div_counts_zero_target_probabilities_as_zero():
    log_q = tt.tensor([[-1.0, -2.0, -0.5]], dtype=F64, requires_grad=True)
    target = tt.tensor([[0.0, 0.25, 0.75]], dtype=F64)
    loss = F.kl_div(log_q, target, reduction="batchmean")
    np.testing.assert_allclose(loss.item(), 0.25 * (np.log(0.25) + 2) + 0.75 * (np.log(0.75) + 0.5), rtol=1e-12)
    loss.backward()
    np.testing.assert_array_equal(log_q.grad.numpy(), [[0.0, -0.25, -0.75]])


@scaled_examples(0.5)
@given(data=st.data())
def test_cosine_similarity_matches_numpy_and_finite_differences(device, data):
    shape_1, shape_2 = data.draw(broadcastable_shapes(2, min_dims=2), label="shapes")
    dim = data.draw(axis(len(np.broadcast_shapes(shape_1, shape_2))), label="dim")
    x1 = data.draw(arrays(shape_1, 0.2, 2.0), label="x1")  # norms well above eps
    x2 = data.draw(arrays(shape_2, -2.0, -0.2), label="x2")

    def reference(a, b):
        a, b = np.broadcast_arrays(a, b)
        return (a * b).sum(dim) / (np.linalg.norm(a, axis=dim) * np.linalg.norm(b, axis=dim))

    check_op(lambda a, b: F.cosine_similarity(a, b, dim), reference, x1, x2, device=device)


def test_cosine_similarity_of_a_zero_vector_is_zero_with_zero_gradient():
    x1 = tt.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=F64, requires_grad=True)
    out = tt.cosine_similarity(x1, tt.tensor([[1.0, 1.0], [3.0, 4.0]], dtype=F64))
    np.testing.assert_allclose(out.numpy(), [0.0, 1.0], rtol=1e-12)
    out.sum().backward()
    assert np.isfinite(x1.grad.numpy()).all()


@pytest.mark.parametrize("op, error, pattern", [
    (lambda x: F.binary_cross_entropy(x, tt.zeros(2, 1)), ValueError,
     r"binary_cross_entropy: input shape \(2,\) != target shape \(2, 1\)"),
    (lambda x: F.binary_cross_entropy(x + 1.5, tt.zeros(2)), ValueError,
     r"binary_cross_entropy: input values must lie in \[0, 1\]"),
    (lambda x: F.binary_cross_entropy_with_logits(x, tt.zeros(3)), ValueError,
     r"binary_cross_entropy_with_logits: input shape \(2,\) != target shape \(3,\)"),
    (lambda x: F.l1_loss(x, tt.zeros(3)), ValueError, r"l1_loss: input shape \(2,\) != target shape \(3,\)"),
    (lambda x: F.mse_loss(x, x, reduction="avg"), ValueError, r"mse_loss: reduction must be .* got 'avg'"),
    (lambda x: F.kl_div(x, x, reduction="avg"), ValueError, r"kl_div: reduction must be 'mean', 'batchmean'"),
    (lambda x: F.smooth_l1_loss(x, x, beta=-1.0), ValueError, r"smooth_l1_loss: beta must be ≥ 0, got -1.0"),
    (lambda x: F.huber_loss(x, x, delta=0.0), ValueError, r"huber_loss: delta must be > 0, got 0.0"),
    (lambda x: F.hardtanh(x, 1.0, -1.0), ValueError, r"hardtanh: min_val 1.0 is greater than max_val -1.0"),
    (lambda x: F.cosine_similarity(x, tt.zeros(3)), ValueError, r"cosine_similarity: shapes \(2,\) and \(3,\)"),
])
def test_loss_and_activation_errors_name_the_op_and_what_was_wrong(op, error, pattern):
    with pytest.raises(error, match=pattern):
        op(tt.tensor([0.25, 0.5]))


# ---- modules -------------------------------------------------------------------------------------------------------
def _random(shape, seed=0, low=-2.0, high=2.0):
    return tt.tensor(np.random.default_rng(seed).uniform(low, high, shape), dtype=F64)


ACTIVATION_MODULES = [
    (nn.Sigmoid(), F.sigmoid, "Sigmoid()"),
    (nn.Softmax(dim=1), lambda x: F.softmax(x, 1), "Softmax(dim=1)"),
    (nn.LogSoftmax(-1), lambda x: F.log_softmax(x, -1), "LogSoftmax(dim=-1)"),
    (nn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2), "LeakyReLU(negative_slope=0.2)"),
    (nn.Softplus(2.0, 1.0), lambda x: F.softplus(x, 2.0, 1.0), "Softplus(beta=2.0, threshold=1.0)"),
    (nn.ELU(), F.elu, "ELU(alpha=1.0)"),
    (nn.Hardtanh(-0.5, 0.5), lambda x: F.hardtanh(x, -0.5, 0.5), "Hardtanh(min_val=-0.5, max_val=0.5)"),
    (nn.Flatten(), lambda x: x.reshape(2, -1), "Flatten(start_dim=1, end_dim=-1)"),
    (nn.Unflatten(1, (3, 1)), lambda x: x.reshape(2, 3, 1, 4), "Unflatten(dim=1, unflattened_size=(3, 1))"),
]


@pytest.mark.parametrize("module, functional, text", ACTIVATION_MODULES, ids=lambda v: getattr(v, "__name__", None))
def test_activation_and_shape_modules_equal_their_functional_form(module, functional, text):
    x = _random((2, 3, 4))
    np.testing.assert_array_equal(module(x).numpy(), functional(x).numpy())
    assert repr(module) == text
    assert module(x.float()).dtype == tt.float32


WEIGHT = _random((3,), 1, 0.1, 1.0)
LOSS_MODULES = [
    (nn.L1Loss("sum"), lambda x, y: F.l1_loss(x, y, "sum"), "L1Loss(reduction='sum')"),
    (nn.MSELoss(), F.mse_loss, "MSELoss(reduction='mean')"),
    (nn.SmoothL1Loss(beta=0.5), lambda x, y: F.smooth_l1_loss(x, y, beta=0.5),
     "SmoothL1Loss(reduction='mean', beta=0.5)"),
    (nn.HuberLoss("none", delta=0.7), lambda x, y: F.huber_loss(x, y, "none", 0.7),
     "HuberLoss(reduction='none', delta=0.7)"),
    (nn.KLDivLoss("batchmean", log_target=True), lambda x, y: F.kl_div(x, y, "batchmean", True),
     "KLDivLoss(reduction='batchmean', log_target=True)"),
    (nn.BCELoss(weight=WEIGHT), lambda x, y: F.binary_cross_entropy(x, y, WEIGHT), "BCELoss(reduction='mean')"),
    (nn.BCEWithLogitsLoss(WEIGHT, "sum", pos_weight=WEIGHT * 2),
     lambda x, y: F.binary_cross_entropy_with_logits(x, y, WEIGHT, "sum", pos_weight=WEIGHT * 2),
     "BCEWithLogitsLoss(reduction='sum')"),
]


@pytest.mark.parametrize("module, functional, text", LOSS_MODULES, ids=lambda v: getattr(v, "__name__", None))
def test_loss_modules_equal_their_functional_form(module, functional, text):
    x, y = _random((4, 3), 3, 0.05, 0.95), _random((4, 3), 4, 0.0, 1.0)  # x: probabilities, so BCELoss takes it
    np.testing.assert_array_equal(module(x, y).numpy(), functional(x, y).numpy())
    assert repr(module) == text


def test_nll_loss_module_equals_the_functional_form_and_bce_weights_are_buffers():
    log_probs, ids = F.log_softmax(_random((4, 3)), -1), tt.tensor([0, 2, -100, 1])
    criterion = nn.NLLLoss(ignore_index=-100, reduction="sum")
    expected = F.nll_loss(log_probs, ids, reduction="sum")
    np.testing.assert_array_equal(criterion(log_probs, ids).numpy(), expected.numpy())
    assert repr(criterion) == "NLLLoss(ignore_index=-100, reduction='sum')"
    with pytest.raises(NotImplementedError, match="NLLLoss: class weights"):
        nn.NLLLoss(weight=tt.ones(3))
    loss = nn.BCEWithLogitsLoss(weight=tt.ones(3), pos_weight=tt.ones(3)).to(F64)
    assert set(loss.state_dict()) == {"weight", "pos_weight"} and loss.pos_weight.dtype == F64


def test_new_modules_are_reachable_as_in_pytorch():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6, dtype=F64), nn.LeakyReLU(), nn.Unflatten(1, (2, 3)),
                          nn.Softmax(-1))
    out = model(_random((5, 3, 4)))
    assert out.shape == (5, 2, 3)
    np.testing.assert_allclose(out.numpy().sum(-1), 1.0, rtol=1e-12)
    check_forward(lambda x: nn.Flatten(0, 1)(x), lambda v: v.reshape(6, 4), np.zeros((2, 3, 4)))


@op_settings
@given(data=st.data())
def test_take_along_dim_matches_numpy_take_along_axis_with_broadcasting_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(st.integers(0, len(shape) - 1), label="dim")
    index_shape = tuple(data.draw(st.sampled_from([1, n]), label=f"side {i}") if i != dim
                        else data.draw(st.integers(1, 4), label="taken") for i, n in enumerate(shape))
    ids = data.draw(index_arrays(index_shape, shape[dim]), label="ids")
    x = data.draw(arrays(shape), label="x")
    index = tensor(ids, device)
    check_op(lambda x: tt.take_along_dim(x, index, dim),
             lambda x: np.take_along_axis(x, np.broadcast_to(ids, [n if i == dim else max(n, m) for i, (n, m) in
                                                                  enumerate(zip(ids.shape, x.shape))]), dim),
             x, device=device)
    flat_ids = ids.reshape(-1) % x.size
    check_op(lambda x: x.take_along_dim(tensor(flat_ids, device)), lambda x: x.reshape(-1)[flat_ids], x, device=device)


@op_settings
@given(data=st.data())
def test_diagonal_diag_and_trace_match_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=2, max_dims=3), label="shape")
    dim1, dim2 = data.draw(st.permutations(range(len(shape))), label="dims")[:2]
    offset = data.draw(st.integers(-3, 3), label="offset")
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: tt.diagonal(x, offset, dim1, dim2), lambda x: np.diagonal(x, offset, dim1, dim2), x,
             device=device)
    v = data.draw(arrays((shape[0],)), label="v")
    check_op(lambda v: tt.diag(v, offset), lambda v: np.diag(v, offset), v, device=device)
    matrix = x.reshape(shape[0], -1)
    check_op(lambda m: m.diag(offset).sum() + m.trace(), lambda m: np.diag(m, offset).sum() + np.trace(m), matrix,
             device=device)


def test_meshgrid_in_both_indexings_and_the_creation_helpers(device):
    xs, ys = tt.arange(3, device=device).float(), tt.arange(2, device=device).float()
    for indexing in ("ij", "xy"):
        grids = tt.meshgrid(xs, ys, indexing=indexing)
        expected = np.meshgrid(np.arange(3.0), np.arange(2.0), indexing=indexing)
        assert [g.numpy().tolist() for g in grids] == [e.tolist() for e in expected]
    assert tt.eye(3, device=device).numpy().tolist() == np.eye(3).tolist() and tt.eye(2, 3).shape == (2, 3)
    like = tt.zeros(2, 3, dtype=tt.float64, device=device)
    for made in (tt.rand_like(like), tt.randn_like(like), tt.empty_like(like)):
        assert made.shape == (2, 3) and made.dtype == tt.float64 and made.device == device
    ints = tt.randint_like(tt.zeros(50, dtype=tt.long, device=device), 3, 5)
    assert set(ints.numpy().tolist()) <= {3, 4} and ints.dtype == tt.long
    array = np.arange(3.0)
    shared = tt.as_tensor(array)
    shared.data[0] = 7.0
    assert array[0] == 7.0 and tt.as_tensor(like) is like and tt.as_tensor([1, 2]).dtype == tt.long


def test_kron_cross_cdist_triangle_indices_and_cartesian_product_match_numpy(device):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    check_op(tt.kron, np.kron, a, b, device=device)
    u, v = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    check_op(lambda u, v: tt.cross(u, v, dim=1), lambda u, v: np.cross(u, v, axis=1), u, v, device=device)
    p, r = rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    check_op(tt.cdist, lambda p, r: np.linalg.norm(p[:, None] - r[None], axis=-1), p, r, device=device)
    assert tt.tril_indices(3, 4, 1).numpy().tolist() == [list(i) for i in np.tril_indices(3, 1, 4)]
    assert tt.triu_indices(3, 3, device=device).numpy().tolist() == [list(i) for i in np.triu_indices(3)]
    product = tt.cartesian_prod(tt.tensor([1, 2]), tt.tensor([3, 4, 5]))
    assert product.tolist() == [[1, 3], [1, 4], [1, 5], [2, 3], [2, 4], [2, 5]]
