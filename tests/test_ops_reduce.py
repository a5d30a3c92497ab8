"""Reductions (tinytensor/ops/reduce.py): sum, mean, amax, amin, var, std, norm, logsumexp over drawn axes, keepdims
or not; PyTorch's max/min over one dim ((values, indices)); cumsum."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, axes, axis, check_op, distinct_arrays, op_settings, reduced_size, shapes, tensor

import tinytensor as tt


def _logsumexp(x, axis, keepdims):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


# name: (op(x, axis, keepdims), NumPy reference(x, axis, keepdims), strategy of values for a shape)
REDUCTIONS = {
    "sum": (lambda x, a, k: x.sum(a, k), lambda x, a, k: np.sum(x, axis=a, keepdims=k), arrays),
    "mean": (lambda x, a, k: x.mean(axis=a, keepdims=k), lambda x, a, k: np.mean(x, axis=a, keepdims=k), arrays),
    "amax": (lambda x, a, k: x.amax(a, k), lambda x, a, k: np.max(x, axis=a, keepdims=k), distinct_arrays),
    "amin": (lambda x, a, k: tt.amin(x, a, k), lambda x, a, k: np.min(x, axis=a, keepdims=k), distinct_arrays),
    "logsumexp": (lambda x, a, k: x.logsumexp(a, k), _logsumexp, arrays),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@op_settings
@given(data=st.data())
def test_reduction_matches_numpy_and_finite_differences_over_axes_and_keepdims(name, device, data):
    op, reference, values = REDUCTIONS[name]
    shape = data.draw(shapes(max_dims=3), label="shape")
    axis, keepdims = data.draw(axes(len(shape)), label="axis"), data.draw(st.booleans(), label="keepdims")
    x = data.draw(values(shape), label="x")
    check_op(lambda x: op(x, axis, keepdims), lambda x: reference(x, axis, keepdims), x, device=device)


@op_settings
@given(data=st.data())
def test_var_matches_numpy_and_finite_differences_for_each_correction(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    axis, keepdims = data.draw(axes(len(shape)), label="axis"), data.draw(st.booleans(), label="keepdims")
    correction = data.draw(st.sampled_from([0, 1]), label="correction")
    if reduced_size(shape, axis) <= correction:
        correction = 0  # one element has no unbiased variance
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.var(axis, keepdim=keepdims, correction=correction),
             lambda x: np.var(x, axis=axis, keepdims=keepdims, ddof=correction), x, device=device)


def test_an_unbiased_variance_of_one_element_is_nan_and_so_is_its_gradient_as_in_pytorch():
    x = tt.tensor([[2.0, 5.0]], dtype=tt.float64, requires_grad=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = x.var(0)                                 # one row: no degrees of freedom
        variance.sum().backward()
    assert np.isnan(variance.numpy()).all() and np.isnan(x.grad.numpy()).all()


@pytest.mark.parametrize("largest", [True, False])
def test_max_and_min_share_the_gradient_equally_between_tied_elements(largest):
    x = tt.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=tt.float64, requires_grad=True)
    reduced = x.amax(1) if largest else x.amin(1)
    (reduced * tt.tensor([6.0, 3.0], dtype=tt.float64)).sum().backward()
    expected = [[0.0, 3.0, 3.0], [1.0, 1.0, 1.0]] if largest else [[6.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_logsumexp_is_finite_for_logits_of_plus_and_minus_1e4():
    x = tt.tensor([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4]], dtype=tt.float64, requires_grad=True)
    out = x.logsumexp(-1)
    np.testing.assert_allclose(out.numpy(), [1e4 + np.log1p(np.exp(-1.0)), -1e4 + np.log(3.0)], rtol=1e-15)
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy().sum(axis=-1), [1.0, 1.0], rtol=1e-14)


def test_reductions_accept_dim_lists_and_numpy_style_keywords():
    values = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    x = tensor(values)
    np.testing.assert_array_equal(x.sum(dim=[0, 2]).numpy(), values.sum(axis=(0, 2)))
    np.testing.assert_array_equal(tt.mean(x, axis=-1, keepdims=True).numpy(), values.mean(axis=-1, keepdims=True))
    np.testing.assert_array_equal(x.argmax(1).numpy(), values.argmax(1))
    assert x.argmax().item() == 23


def test_reduction_over_an_axis_out_of_range_says_which_axis():
    with pytest.raises(IndexError, match="axis 3 is out of range for a tensor with 3 dimensions"):
        tensor(np.zeros((2, 3, 4))).sum(3)


# ---- PyTorch's max/min, std, norm, cumsum ---------------------------------------------------------------------------
@pytest.mark.parametrize("largest", [True, False])
@op_settings
@given(data=st.data())
def test_max_and_min_over_one_dim_return_values_and_indices_like_pytorch(largest, device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim, keepdim = data.draw(axis(len(shape)), label="dim"), data.draw(st.booleans(), label="keepdim")
    x = data.draw(distinct_arrays(shape), label="x")
    op, reference, arg = (tt.max, np.max, np.argmax) if largest else (tt.min, np.min, np.argmin)
    values, indices = op(tensor(x, device), dim, keepdim)
    np.testing.assert_array_equal(indices.numpy(), arg(x, axis=dim, keepdims=keepdim))
    assert indices.dtype == tt.int64
    check_op(lambda x: op(x, dim, keepdim).values, lambda x: reference(x, axis=dim, keepdims=keepdim), x,
             device=device)


def test_max_of_everything_is_a_tensor_and_max_of_two_tensors_is_elementwise():
    a, b = tt.tensor([[1.0, 5.0], [3.0, 2.0]]), tt.tensor([[2.0, 1.0], [1.0, 4.0]])
    assert tt.max(a).item() == 5.0 and a.min().item() == 1.0
    np.testing.assert_array_equal(tt.max(a, b).numpy(), [[2.0, 5.0], [3.0, 4.0]])
    np.testing.assert_array_equal(a.max(dim=(0, 1)).numpy(), 5.0)  # several dims: values only, as amax


@op_settings
@given(data=st.data())
def test_std_matches_numpy_and_finite_differences_with_pytorch_defaults(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=2), label="shape")
    dim, keepdim = data.draw(axes(len(shape)), label="dim"), data.draw(st.booleans(), label="keepdim")
    x = data.draw(distinct_arrays(shape), label="x")  # distinct values: the std is never 0
    check_op(lambda x: x.std(dim, keepdim=keepdim), lambda x: np.std(x, axis=dim, keepdims=keepdim, ddof=1), x,
             device=device)


def test_var_and_std_take_unbiased_positionally_or_correction_by_keyword():
    values = np.array([[1.0, 2.0, 4.0], [0.0, 3.0, 9.0]])
    x = tensor(values)
    np.testing.assert_allclose(x.var().item(), values.var(ddof=1))
    np.testing.assert_allclose(x.var(False).item(), values.var())
    np.testing.assert_allclose(x.var(1, False).numpy(), values.var(axis=1))
    np.testing.assert_allclose(x.std(1, True, True).numpy(), values.std(axis=1, ddof=1, keepdims=True))
    np.testing.assert_allclose(tt.std(x, dim=0, correction=0).numpy(), values.std(axis=0))


@pytest.mark.parametrize("p", [1, 2, 3, "fro"])
@op_settings
@given(data=st.data())
def test_norm_matches_numpy_and_finite_differences(p, device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim, keepdim = data.draw(axes(len(shape)), label="dim"), data.draw(st.booleans(), label="keepdim")
    x = data.draw(arrays(shape, away_from=(0.0,), margin=0.1), label="x")
    order = 2 if p == "fro" else p
    check_op(lambda x: x.norm(p, dim, keepdim),
             lambda x: np.sum(np.abs(x) ** order, axis=dim, keepdims=keepdim) ** (1 / order), x, device=device)


def test_norm_of_zeros_has_a_zero_gradient_as_in_pytorch():
    x = tt.zeros(3, dtype=tt.float64, requires_grad=True)
    x.norm().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])


@op_settings
@given(data=st.data())
def test_cumsum_matches_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: tt.cumsum(x, dim), lambda x: np.cumsum(x, axis=dim), x, device=device)


def test_cumsum_of_integers_and_bools_counts_in_int64():
    mask = tt.tensor([True, False, True, True])
    assert mask.cumsum(0).tolist() == [1, 1, 2, 3] and mask.cumsum(0).dtype == tt.int64


def test_histogram_and_histc_count_as_numpy_and_pytorch(device):
    values = np.array([0.1, 0.4, 0.4, 0.9, -0.3, 2.5])
    x = tensor(values, device, tt.float64)
    hist, edges = tt.histogram(x, bins=4, range=(0.0, 1.0))
    expected, expected_edges = np.histogram(values, bins=4, range=(0.0, 1.0))
    assert hist.numpy().tolist() == expected.tolist() and edges.numpy().tolist() == expected_edges.tolist()
    density = tt.histogram(x, bins=5, density=True)
    assert np.isclose((density.hist.numpy() * np.diff(density.bin_edges.numpy())).sum(), 1.0)
    assert tt.histc(tensor(np.array([1.0, 2.0, 1.0]), device), bins=4, min=0, max=3).numpy().tolist() == [0, 2, 1, 0]
    with pytest.raises(TypeError, match="histogram: expects a floating tensor"):
        tt.histogram(tt.tensor([1, 2]))


def test_unique_bincount_count_nonzero_var_mean_and_clip(device):
    ids = tensor(np.array([3, 1, 3, 2, 3]), device)
    values, inverse, counts = tt.unique(ids, return_inverse=True, return_counts=True)
    assert values.numpy().tolist() == [1, 2, 3] and counts.numpy().tolist() == [1, 1, 3]
    assert values.numpy()[inverse.numpy()].tolist() == [3, 1, 3, 2, 3] and ids.unique().numpy().tolist() == [1, 2, 3]
    assert tt.bincount(ids, minlength=6).numpy().tolist() == [0, 1, 1, 3, 0, 0]
    weighted = tt.bincount(ids, weights=tensor(np.array([0.5, 1.0, 0.5, 2.0, 1.0]), device))
    assert weighted.numpy().tolist() == [0.0, 1.0, 2.0, 2.0]
    x = tensor(np.array([[0.0, 1.5, 0.0], [2.0, 0.0, -1.0]]), device, tt.float64, requires_grad=True)
    assert tt.count_nonzero(x).item() == 3 and x.count_nonzero(1).numpy().tolist() == [1, 2]
    variance, mean = tt.var_mean(x, 1)
    np.testing.assert_allclose(variance.numpy(), np.var(x.detach().numpy(), 1, ddof=1))
    np.testing.assert_allclose(mean.numpy(), x.detach().numpy().mean(1))
    std, _ = tt.std_mean(x, 1, correction=0, keepdim=True)
    np.testing.assert_allclose(std.numpy(), np.std(x.detach().numpy(), 1, keepdims=True))
    assert tt.clip(x, -0.5, 1.0).numpy().tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, -0.5]] and x.clip(max=0).max() == 0
    with pytest.raises(ValueError, match="bincount: expects a 1-D tensor of non-negative integers"):
        tt.bincount(x)


@op_settings
@given(data=st.data())
def test_cumprod_quantile_and_median_match_numpy_and_finite_differences_zeros_included(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    x = data.draw(arrays(shape), label="x")
    x.flat[data.draw(st.integers(0, x.size - 1), label="zeroed")] = 0.0  # cumprod's gradient must survive a zero
    check_op(lambda x: tt.cumprod(x, dim), lambda x: np.cumprod(x, dim), x, device=device)
    distinct = data.draw(distinct_arrays(shape), label="distinct")  # ties would make the sorted order ambiguous
    q = data.draw(st.sampled_from([0.0, 0.3, 0.5, 1.0]), label="q")
    check_op(lambda x: tt.quantile(x, q, dim), lambda x: np.quantile(x, q, axis=dim), distinct, device=device)
    lower = (shape[dim] - 1) // 2
    check_op(lambda x: x.median(dim).values, lambda x: np.take(np.sort(x, dim), lower, dim), distinct, device=device)


def test_cummax_nan_reductions_searchsorted_and_cumprod_second_derivative(device):
    x = tensor(np.array([[2.0, 0.0, 3.0, 3.0], [1.0, 4.0, 2.0, 5.0]]), device, tt.float64, requires_grad=True)
    values, indices = x.cummax(1)
    assert values.numpy().tolist() == [[2, 2, 3, 3], [1, 4, 4, 5]] and indices.numpy().tolist() == [[0, 0, 2, 3],
                                                                                                       [0, 1, 1, 3]]
    values.sum().backward()
    assert x.grad.numpy().tolist() == [[2, 0, 1, 1], [1, 2, 0, 1]]
    gaps = tensor(np.array([1.0, np.nan, 3.0]), device)
    assert tt.nansum(gaps).item() == 4.0 and gaps.nanmean().item() == 2.0
    edges = tensor(np.array([1, 3, 5, 7]), device)
    assert tt.searchsorted(edges, tensor(np.array([3, 6]), device)).numpy().tolist() == [1, 3]
    assert tt.searchsorted(edges, tensor(np.array([3, 6]), device), right=True).numpy().tolist() == [2, 3]
    assert tt.bucketize(tensor(np.array([3, 6]), device), edges).numpy().tolist() == [1, 3]
    leaf = tt.tensor(np.array([[0.5, 0.0, 2.0], [1.5, -1.0, 0.3]]), requires_grad=True)
    assert tt.gradgradcheck(lambda a: tt.cumprod(a, 1), [leaf])
