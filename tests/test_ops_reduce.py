"""Reductions (tinytensor/ops/reduce.py): sum, mean, max, min, var, logsumexp over drawn axes, keepdims or not."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, axes, check_op, distinct_arrays, op_settings, reduced_size, shapes, tensor

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
