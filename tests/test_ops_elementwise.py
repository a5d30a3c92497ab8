"""Elementwise ops (tinytensor/ops/elementwise.py): forward against NumPy, backward against finite differences.

Each op is one lambda in a table; `check_op` (tests/strategies.py) does the rest. Binary ops draw mutually
broadcastable shapes, so the engine's `sum_to` is exercised by every one of them.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    arrays,
    bool_masks,
    broadcastable_shapes,
    check_forward,
    check_gradient,
    check_op,
    grid_arrays,
    op_settings,
    shapes,
    tensor,
)

import tinytensor as tt
import tinytensor.nn.functional as F

_erf = np.vectorize(math.erf)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _gelu_erf(x):
    return x * 0.5 * (1 + _erf(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _any(shape):
    return arrays(shape)


def _positive(shape):
    return arrays(shape, low=0.5, high=2.0)


def _nonzero(shape):
    return arrays(shape, away_from=(0.0,), margin=0.5)


# ---- binary ops over broadcast shapes ----------------------------------------------------------------------------
# name: (op, NumPy reference, strategy of a's values, strategy of b's values)
BINARY = {
    "add": (lambda a, b: a + b, np.add, _any, _any),
    "sub": (lambda a, b: a - b, np.subtract, _any, _any),
    "mul": (lambda a, b: a * b, np.multiply, _any, _any),
    "div": (lambda a, b: a / b, np.divide, _any, _nonzero),
    "pow": (lambda a, b: a**b, np.power, _positive, _any),
    "maximum": (tt.maximum, np.maximum, grid_arrays, lambda shape: grid_arrays(shape, offset=0.1)),
    "minimum": (tt.minimum, np.minimum, grid_arrays, lambda shape: grid_arrays(shape, offset=0.1)),
}


@pytest.mark.parametrize("name", BINARY)
@op_settings
@given(data=st.data())
def test_binary_op_matches_numpy_and_finite_differences_over_broadcast_shapes(name, device, data):
    op, reference, a_values, b_values = BINARY[name]
    a_shape, b_shape = data.draw(broadcastable_shapes(2), label="shapes")
    a, b = data.draw(a_values(a_shape), label="a"), data.draw(b_values(b_shape), label="b")
    check_op(op, reference, a, b, device=device)


# ---- unary ops, including Python-scalar forms --------------------------------------------------------------------
# name: (op, NumPy reference, strategy of the input's values)
UNARY = {
    "neg": (lambda x: -x, np.negative, _any),
    "exp": (tt.exp, np.exp, _any),
    "log": (lambda x: x.log(), np.log, lambda shape: arrays(shape, low=0.1, high=3.0)),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, lambda shape: arrays(shape, low=0.1, high=3.0)),
    "rsqrt": (tt.rsqrt, lambda x: 1 / np.sqrt(x), lambda shape: arrays(shape, low=0.2, high=3.0)),
    "tanh": (lambda x: x.tanh(), np.tanh, _any),
    "sigmoid": (lambda x: x.sigmoid(), _sigmoid, lambda shape: arrays(shape, low=-6.0, high=6.0)),
    "relu": (F.relu, lambda x: np.maximum(x, 0), lambda shape: arrays(shape, away_from=(0.0,))),
    "gelu_erf": (F.gelu, _gelu_erf, lambda shape: arrays(shape, low=-4.0, high=4.0)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), _gelu_tanh, lambda shape: arrays(shape, low=-4.0,
                                                                                                high=4.0)),
    "silu": (F.silu, lambda x: x * _sigmoid(x), lambda shape: arrays(shape, low=-5.0, high=5.0)),
    "abs": (lambda x: x.abs(), np.abs, lambda shape: arrays(shape, away_from=(0.0,))),
    "clamp": (lambda x: x.clamp(-0.5, 0.75), lambda x: np.clip(x, -0.5, 0.75),
              lambda shape: arrays(shape, away_from=(-0.5, 0.75))),
    "clamp_min": (lambda x: tt.clamp(x, min=0.25), lambda x: np.maximum(x, 0.25),
                  lambda shape: arrays(shape, away_from=(0.25,))),
    "clamp_max": (lambda x: tt.clamp(x, max=-0.25), lambda x: np.minimum(x, -0.25),
                  lambda shape: arrays(shape, away_from=(-0.25,))),
    "scalar_add": (lambda x: x + 1.5, lambda x: x + 1.5, _any),
    "scalar_rsub": (lambda x: 1.5 - x, lambda x: 1.5 - x, _any),
    "scalar_mul": (lambda x: 3 * x, lambda x: 3 * x, _any),
    "scalar_div": (lambda x: x / 4.0, lambda x: x / 4.0, _any),
    "scalar_rdiv": (lambda x: 2.0 / x, lambda x: 2.0 / x, _nonzero),
    "square": (lambda x: x**2, np.square, _any),
    "cube": (lambda x: x**3.0, lambda x: x**3, _any),
    "power_half": (lambda x: x**0.5, np.sqrt, _positive),
    "power_negative": (lambda x: x**-1.5, lambda x: x**-1.5, _positive),
    "scalar_rpow": (lambda x: 2.0**x, lambda x: 2.0**x, _any),
    "maximum_scalar": (lambda x: tt.maximum(x, 0.5), lambda x: np.maximum(x, 0.5),
                       lambda shape: arrays(shape, away_from=(0.5,))),
    "minimum_scalar": (lambda x: tt.minimum(x, 0.5), lambda x: np.minimum(x, 0.5),
                       lambda shape: arrays(shape, away_from=(0.5,))),
    "clone": (tt.clone, lambda x: x, _any),
}


@pytest.mark.parametrize("name", UNARY)
@op_settings
@given(data=st.data())
def test_unary_op_matches_numpy_and_finite_differences(name, device, data):
    op, reference, values = UNARY[name]
    x = data.draw(values(data.draw(shapes(max_dims=3), label="shape")), label="x")
    check_op(op, reference, x, device=device)


# ---- where and masked_fill ---------------------------------------------------------------------------------------
@op_settings
@given(data=st.data())
def test_where_matches_numpy_and_sends_gradient_to_the_chosen_branch(device, data):
    cond_shape, a_shape, b_shape = data.draw(broadcastable_shapes(3), label="shapes")
    cond = tensor(data.draw(bool_masks(cond_shape), label="cond"), device)
    a, b = data.draw(arrays(a_shape), label="a"), data.draw(arrays(b_shape), label="b")
    check_op(lambda a, b: tt.where(cond, a, b), lambda a, b: np.where(cond.numpy(), a, b), a, b, device=device)


@op_settings
@given(data=st.data())
def test_where_with_a_python_scalar_branch_matches_numpy(device, data):
    shape = data.draw(shapes(), label="shape")
    cond = tensor(data.draw(bool_masks(shape), label="cond"), device)
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: tt.where(cond, x, -1.0), lambda x: np.where(cond.numpy(), x, -1.0), x, device=device)
    check_op(lambda x: tt.where(cond, 2, x), lambda x: np.where(cond.numpy(), 2.0, x), x, device=device)


@op_settings
@given(data=st.data())
def test_masked_fill_matches_numpy_and_masked_entries_get_zero_gradient(device, data):
    x_shape = data.draw(shapes(min_dims=1), label="x_shape")
    mask_shape = data.draw(st.sampled_from([x_shape, x_shape[1:], (1,) * len(x_shape), x_shape[-1:]]), label="mask")
    mask = tensor(data.draw(bool_masks(mask_shape), label="mask"), device)
    x = data.draw(arrays(x_shape), label="x")
    check_op(lambda x: x.masked_fill(mask, -3.5), lambda x: np.where(mask.numpy(), -3.5, x), x, device=device)
    leaf = tensor(x, device, tt.float64, requires_grad=True)
    leaf.masked_fill(mask, 0.0).sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), np.broadcast_to(~mask.numpy(), x_shape).astype(np.float64))


# ---- exact values ------------------------------------------------------------------------------------------------
def test_gelu_erf_matches_the_math_erf_formula_to_1e_minus_12_in_float64():
    x = np.concatenate([np.linspace(-10, 10, 2001), [0.0, 0.5, -0.5, 0.4999999, 1e-8, -1e-8, 30.0, -30.0]])
    out = F.gelu(tt.tensor(x, dtype=tt.float64)).numpy()
    np.testing.assert_allclose(out, _gelu_erf(x), rtol=1e-12, atol=1e-12)


def test_erf_helper_matches_math_erf_to_rounding_error():
    from tinytensor.ops.activation import erf_array as erf

    x = np.concatenate([np.linspace(-6, 6, 4801), [0.5, -0.5, np.nextafter(0.5, 0), 1e-300, 0.0]])
    np.testing.assert_allclose(erf(np, x), _erf(x), rtol=1e-14, atol=1e-15)


def test_erf_in_float32_stays_within_abramowitz_stegun_bound_across_chunks():
    from tinytensor.backend import SLICE
    from tinytensor.ops.activation import erf_array as erf

    x = np.linspace(-8, 8, 3 * SLICE + 17)  # several CPU slices and a ragged tail
    out = erf(np, x.astype(np.float32))
    assert out.dtype == np.float32
    exact = _erf(x.astype(np.float32).astype(np.float64))  # erf of the float32 inputs actually passed
    # the fit's 1.5e-7, plus float32 rounding of 1 − series·e^(−x²) where it cancels (near 0)
    np.testing.assert_allclose(out, exact, rtol=0, atol=1.5e-7 + 4 * np.finfo(np.float32).eps)
    half = erf(np, x[:100].astype(np.float16))
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, _erf(x[:100]), rtol=0, atol=1e-3)


def test_sigmoid_and_silu_are_finite_and_saturate_at_large_logits():
    x = tt.tensor([-1e4, -800.0, 0.0, 800.0, 1e4], dtype=tt.float64)
    np.testing.assert_array_equal(x.sigmoid().numpy(), [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(F.silu(x).numpy(), [-0.0, -0.0, 0.0, 800.0, 1e4])


def test_maximum_and_minimum_split_the_gradient_equally_on_ties():
    a = tt.tensor([1.0, 2.0, 3.0], dtype=tt.float64, requires_grad=True)
    b = tt.tensor([1.0, 0.0, 5.0], dtype=tt.float64, requires_grad=True)
    (tt.maximum(a, b) + 10 * tt.minimum(a, b)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [5.5, 1.0, 10.0])
    np.testing.assert_array_equal(b.grad.numpy(), [5.5, 10.0, 1.0])


def test_relu_gradient_is_zero_for_negative_inputs_and_one_for_positive():
    x = tt.tensor([-2.0, -1e-9, 1e-9, 3.0], dtype=tt.float64, requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0, 1.0])


def test_pow_gradient_with_respect_to_a_tensor_exponent_is_out_times_log_base():
    base = tt.tensor([0.5, 2.0, 3.0], dtype=tt.float64, requires_grad=True)
    exponent = tt.tensor([2.0, -1.0, 0.5], dtype=tt.float64, requires_grad=True)
    (base**exponent).sum().backward()
    b, e = base.numpy(), exponent.numpy()
    np.testing.assert_allclose(base.grad.numpy(), e * b ** (e - 1), rtol=1e-14)
    np.testing.assert_allclose(exponent.grad.numpy(), b**e * np.log(b), rtol=1e-14)


# ---- casts -------------------------------------------------------------------------------------------------------
FLOATS = [tt.float16, tt.float32, tt.float64]


@pytest.mark.parametrize("source", FLOATS, ids=str)
@pytest.mark.parametrize("target", FLOATS, ids=str)
@op_settings
@given(data=st.data())
def test_cast_between_float_dtypes_converts_values_and_returns_the_gradient_in_the_source_dtype(source, target,
                                                                                               device, data):
    shape = data.draw(shapes(), label="shape")
    x = tensor(data.draw(arrays(shape), label="x"), device, source, requires_grad=True)
    upstream = data.draw(arrays(shape), label="upstream")
    y = x.to(target)
    assert y.dtype == target
    np.testing.assert_array_equal(y.numpy(), x.numpy().astype(target))
    y.backward(tensor(upstream, device, target))
    assert x.grad.dtype == source
    np.testing.assert_array_equal(x.grad.numpy(), upstream.astype(target).astype(source))


@op_settings
@given(data=st.data())
def test_cast_through_float32_has_unit_gradient_at_float32_resolution(device, data):
    """x → float32 → float64 is the identity up to float32 rounding (1e-7), so step 1e-3 sees its slope of 1."""
    x = data.draw(arrays(data.draw(shapes(), label="shape")), label="x")
    check_gradient(lambda x: x.float().double() * 3.0, x, device=device, eps=1e-3)


def test_cast_to_int_or_bool_cuts_the_graph():
    x = tt.tensor([1.7, -0.2, 0.0], dtype=tt.float64, requires_grad=True)
    as_int, as_bool = x.long(), x.bool()
    assert as_int.dtype == tt.int64 and not as_int.requires_grad
    assert as_bool.dtype == tt.bool_ and not as_bool.requires_grad
    np.testing.assert_array_equal(as_int.numpy(), [1, 0, 0])
    np.testing.assert_array_equal(as_bool.numpy(), [True, True, False])


# ---- comparisons and logic ---------------------------------------------------------------------------------------
@op_settings
@given(data=st.data())
def test_comparisons_and_logic_match_numpy_and_carry_no_gradient(device, data):
    a_shape, b_shape = data.draw(broadcastable_shapes(2), label="shapes")
    a_values, b_values = data.draw(grid_arrays(a_shape), label="a"), data.draw(grid_arrays(b_shape), label="b")
    a, b = tensor(a_values, device, requires_grad=True), tensor(b_values, device)
    with np.errstate(divide="ignore", invalid="ignore"):
        finite, expected_finite = tt.isfinite(a / b), np.isfinite(a_values / b_values)
    for result, expected in [(a == b, a_values == b_values), (a != b, a_values != b_values),
                             (a < b, a_values < b_values), (a <= b, a_values <= b_values),
                             (a > b, a_values > b_values), (a >= b, a_values >= b_values),
                             ((a > 0) & (b > 0), (a_values > 0) & (b_values > 0)),
                             ((a > 0) | (b > 0), (a_values > 0) | (b_values > 0)),
                             (~(a > 0), ~(a_values > 0)), (finite, expected_finite)]:
        assert result.dtype == tt.bool_ and not result.requires_grad
        np.testing.assert_array_equal(result.numpy(), expected)


def test_binary_ops_with_python_scalars_on_either_side_match_numpy():
    x = np.array([[0.5, -1.25], [2.0, 3.0]])
    check_forward(lambda t: (2 - t) * 3 + t / 2 - 1 / t + 2**t - t**2, lambda v: (2 - v) * 3 + v / 2 - 1 / v
                  + 2**v - v**2, x)
