"""More PyTorch math (tinytensor/ops/unary.py, prod/any/all in ops/reduce.py, mm…baddbmm in ops/linalg.py,
lerp/addcmul/addcdiv/logical_xor in ops/elementwise.py, their in-place forms in ops/inplace.py).

Differentiable ops: forward against a NumPy formula and backward against central finite differences (`check_op`,
float64, drawn shapes and values), on every backend; second derivatives of the ops with a backward of their own
(`gradgradcheck`). Ops without gradient (rounding's zeros, value tests, bool reductions): forward against NumPy,
edge cases included (halves, NaN, inf, zeros, integer inputs). Shape errors name the op and both shapes.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    arrays,
    axes,
    bool_masks,
    broadcastable_shapes,
    check_forward,
    check_gradient,
    check_op,
    grid_arrays,
    index_arrays,
    op_settings,
    scaled_examples,
    shapes,
    tensor,
)

import tinytensor as tt

few = scaled_examples(0.2)


def _positive(shape):
    return arrays(shape, low=0.2, high=3.0)


def _nonzero(shape):
    return arrays(shape, away_from=(0.0,), margin=0.5)


def _off_the_steps(shape):
    """Values k/4 + 0.1: at least 0.1 from every integer and every half, where rounding jumps."""
    return grid_arrays(shape, offset=0.1)


# ---- differentiable unary ops ------------------------------------------------------------------------------------
# name: (op, NumPy reference, strategy of the input's values)
UNARY = {
    "sin": (tt.sin, np.sin, lambda shape: arrays(shape, low=-4.0, high=4.0)),
    "cos": (lambda x: x.cos(), np.cos, lambda shape: arrays(shape, low=-4.0, high=4.0)),
    "log1p": (lambda x: x.log1p(), np.log1p, lambda shape: arrays(shape, low=-0.8, high=3.0)),
    "expm1": (tt.expm1, np.expm1, arrays),
    "log2": (lambda x: x.log2(), np.log2, _positive),
    "log10": (tt.log10, np.log10, _positive),
    "reciprocal": (lambda x: x.reciprocal(), np.reciprocal, _nonzero),
    "square": (tt.square, np.square, arrays),
    "frac": (lambda x: x.frac(), lambda x: x - np.trunc(x), _off_the_steps),
    "clamp_min": (lambda x: x.clamp_min(0.3), lambda x: np.maximum(x, 0.3), lambda s: arrays(s, away_from=(0.3,))),
    "clamp_max": (lambda x: tt.clamp_max(x, -0.3), lambda x: np.minimum(x, -0.3),
                  lambda s: arrays(s, away_from=(-0.3,))),
    # piecewise constant: values off the jumps, where finite differences see the zero gradient
    "floor": (tt.floor, np.floor, _off_the_steps),
    "ceil": (lambda x: x.ceil(), np.ceil, _off_the_steps),
    "round": (lambda x: x.round(), np.round, _off_the_steps),
    "trunc": (tt.trunc, np.trunc, _off_the_steps),
    "sign": (lambda x: x.sign(), np.sign, lambda shape: arrays(shape, away_from=(0.0,))),
    "tan": (tt.tan, np.tan, lambda shape: arrays(shape, low=-1.2, high=1.2)),
    "asin": (lambda x: x.asin(), np.arcsin, lambda shape: arrays(shape, low=-0.9, high=0.9)),
    "acos": (tt.acos, np.arccos, lambda shape: arrays(shape, low=-0.9, high=0.9)),
    "atan": (lambda x: x.atan(), np.arctan, arrays),
    "sinh": (tt.sinh, np.sinh, arrays),
    "cosh": (lambda x: x.cosh(), np.cosh, arrays),
    "logit": (lambda x: x.logit(), lambda x: np.log(x / (1 - x)), lambda shape: arrays(shape, low=0.05, high=0.95)),
}


@pytest.mark.parametrize("name", UNARY)
@op_settings
@given(data=st.data())
def test_unary_op_matches_numpy_and_finite_differences(name, device, data):
    op, reference, values = UNARY[name]
    x = data.draw(values(data.draw(shapes(), label="shape")), label="x")
    check_op(op, reference, x, device=device)


SECOND_ORDER = {
    "sin": (tt.sin, {}),
    "cos": (lambda x: x.cos() * x, {}),
    "log1p": (tt.log1p, dict(low=-0.5, high=2.0)),
    "expm1": (tt.expm1, {}),
    "log2": (tt.log2, dict(low=0.5, high=2.0)),
    "log10": (lambda x: tt.log10(x * x), dict(low=0.5, high=2.0)),
    "reciprocal": (tt.reciprocal, dict(low=0.5, high=2.0)),
    "round_times_x": (lambda x: x.round() * x * x, dict(away_from=(-1.5, -0.5, 0.5, 1.5), margin=0.1)),
    "prod": (lambda x: x.prod(-1), {}),
    "prod_all": (lambda x: x.prod(), {}),
}


@pytest.mark.parametrize("name", SECOND_ORDER)
@few
@given(data=st.data())
def test_second_derivatives_match_finite_differences(name, data):
    fn, options = SECOND_ORDER[name]
    x = tensor(data.draw(arrays((2, 3), **options)), dtype=tt.float64, requires_grad=True)
    assert tt.gradgradcheck(fn, [x])


@few
@given(data=st.data())
def test_prod_second_derivatives_are_right_where_a_factor_is_zero(data):
    values = data.draw(arrays((2, 4)))
    shift = tensor(np.where(np.arange(4) == data.draw(st.integers(0, 3)), values, 0.0), dtype=tt.float64)
    x = tensor(values, dtype=tt.float64, requires_grad=True)
    assert tt.gradgradcheck(lambda x: (x - shift).prod(1), [x])  # one factor per row is 0 at the checked point


def test_rounding_rounds_halves_to_even_keeps_integers_and_passes_zero_gradient():
    halves = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.0, -0.0, 1e300])
    np.testing.assert_array_equal(tt.round(tt.tensor(halves, dtype=tt.float64)).numpy(), np.round(halves))
    np.testing.assert_array_equal(tt.tensor([1.25, -3.75, 12.5]).round(decimals=1).numpy(),
                                  np.round(np.array([1.25, -3.75, 12.5], dtype=np.float32), 1))
    np.testing.assert_array_equal(tt.tensor([1234.0, -55.0]).round(decimals=-1).numpy(), [1230.0, -60.0])
    ints = tt.tensor([-3, 0, 7])
    for op in (tt.floor, tt.ceil, tt.round, tt.trunc, tt.sign):
        out = op(ints)
        assert out.dtype == tt.int64
        np.testing.assert_array_equal(out.numpy(), np.sign([-3, 0, 7]) if op is tt.sign else [-3, 0, 7])
    x = tt.tensor([-1.7, 0.0, 2.2], dtype=tt.float64, requires_grad=True)
    (x.floor() + x.ceil() + x.round() + x.trunc() + x.sign()).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(tt.tensor([-1.75, 1.75]).frac().numpy(), [-0.75, 0.75])


def test_transcendental_functions_of_integers_give_the_default_float_and_log2_is_exact_at_powers_of_two():
    assert tt.sin(tt.tensor([0, 1])).dtype == tt.float32
    assert tt.reciprocal(tt.tensor([2, 4])).tolist() == [0.5, 0.25]
    np.testing.assert_array_equal(tt.log2(tt.tensor([1.0, 8.0, 1024.0], dtype=tt.float64)).numpy(), [0, 3, 10])
    np.testing.assert_array_equal(tt.log10(tt.tensor([1e-3, 1e6], dtype=tt.float64)).numpy(), [-3, 6])
    tiny = tt.tensor([1e-20], dtype=tt.float64)
    assert tt.log1p(tiny).item() == 1e-20 and tt.expm1(tiny).item() == 1e-20


# ---- value tests -------------------------------------------------------------------------------------------------
SPECIALS = np.array([0.0, -1.5, np.nan, np.inf, -np.inf, 1e-8, 2.0])


def test_isnan_and_isinf_match_numpy_and_carry_no_gradient(device):
    x = tensor(SPECIALS, device, tt.float64, requires_grad=True)
    for result, expected in ((tt.isnan(x), np.isnan(SPECIALS)), (x.isinf(), np.isinf(SPECIALS))):
        assert result.dtype == tt.bool_ and not result.requires_grad and result.device == x.device
        np.testing.assert_array_equal(result.numpy(), expected)


@pytest.mark.parametrize("equal_nan", [False, True])
@op_settings
@given(data=st.data())
def test_isclose_and_allclose_match_numpy_over_broadcast_shapes(equal_nan, device, data):
    a_shape, b_shape = data.draw(broadcastable_shapes(2), label="shapes")
    a = data.draw(grid_arrays(a_shape, step=1e-5), label="a")
    b = np.where(data.draw(bool_masks(b_shape), label="nan"), np.nan, data.draw(grid_arrays(b_shape, step=1e-5)))
    options = dict(rtol=1e-4, atol=2e-5, equal_nan=equal_nan)
    got = tt.isclose(tensor(a, device, tt.float64), tensor(b, device, tt.float64), **options)
    assert got.dtype == tt.bool_
    np.testing.assert_array_equal(got.numpy(), np.isclose(a, b, **options))
    assert tensor(a, device, tt.float64).allclose(tensor(b, device, tt.float64), **options) is \
        bool(np.allclose(a, b, **options))


def test_isclose_defaults_are_pytorchs():
    base = tt.tensor([1.0, 100.0, 0.0], dtype=tt.float64)
    assert tt.isclose(base, base + tt.tensor([1e-6, 1e-3, 1e-8], dtype=tt.float64)).tolist() == [True, True, True]
    assert tt.isclose(base, base + tt.tensor([2e-5, 2e-3, 2e-8], dtype=tt.float64)).tolist() == [False, False, False]
    assert not tt.allclose(tt.tensor([np.nan]), tt.tensor([np.nan]))
    assert tt.allclose(tt.tensor([np.nan]), tt.tensor([np.nan]), equal_nan=True)


def test_equal_needs_the_same_shape_and_values(device):
    x = tensor([[1.0, 2.0, 3.0]], device)
    assert tt.equal(x, tensor([[1.0, 2.0, 3.0]], device)) is True
    assert x.equal(tensor([[1, 2, 3]], device))  # values compare after promotion, as PyTorch
    assert not tt.equal(x, tensor([1.0, 2.0, 3.0], device))  # broadcastable is not equal
    assert not tt.equal(x, tensor([[1.0, 2.0, 4.0]], device))
    assert not tt.equal(tensor([np.nan], device), tensor([np.nan], device))


@op_settings
@given(data=st.data())
def test_logical_xor_matches_numpy_over_broadcast_shapes(device, data):
    a_shape, b_shape = data.draw(broadcastable_shapes(2), label="shapes")
    a, b = data.draw(index_arrays(a_shape, 3), label="a"), data.draw(bool_masks(b_shape), label="b")
    got = tensor(a, device).logical_xor(tensor(b, device))
    assert got.dtype == tt.bool_
    np.testing.assert_array_equal(got.numpy(), np.logical_xor(a, b))


# ---- reductions --------------------------------------------------------------------------------------------------
@op_settings
@given(data=st.data())
def test_prod_matches_numpy_and_finite_differences_with_zeros_among_the_factors(device, data):
    shape = data.draw(shapes(max_dims=3), label="shape")
    dim = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)) if shape else st.none(),
                    label="dim")
    keepdim = data.draw(st.booleans(), label="keepdim")
    zeros = data.draw(bool_masks(shape), label="zeros")
    x = np.where(zeros, 0.0, data.draw(arrays(shape, low=-1.5, high=1.5), label="x"))

    def reference(x):
        if dim is None:
            return np.prod(x).reshape((1,) * x.ndim if keepdim else ())
        return np.prod(x, axis=dim, keepdims=keepdim)

    check_op(lambda x: tt.prod(x, dim, keepdim) if dim is not None or keepdim else x.prod(), reference, x,
             device=device)


def test_prod_gradient_is_the_product_of_the_other_factors_even_at_zeros():
    x = tt.tensor([[2.0, 0.0, 3.0, -1.0], [0.0, 5.0, 0.0, 2.0], [1.0, 2.0, 3.0, 4.0]], dtype=tt.float64,
                  requires_grad=True)
    x.prod(1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, -6.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],
                                                   [24.0, 12.0, 8.0, 6.0]])


def test_prod_of_integers_is_int64_and_dtype_casts_first():
    assert tt.prod(tt.tensor([[1, 2], [3, 4]], dtype=tt.int32)).dtype == tt.int64
    assert tt.tensor([True, True]).prod().item() == 1
    out = tt.tensor([[1, 2], [3, 4]]).prod(0, dtype=tt.float64)
    assert out.dtype == tt.float64 and out.tolist() == [3.0, 8.0]
    empty = tt.zeros(2, 0, dtype=tt.float64, requires_grad=True)
    empty.prod(1).sum().backward()
    assert empty.grad.shape == (2, 0) and tt.zeros(2, 0).prod(1).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", ["any", "all"])
@op_settings
@given(data=st.data())
def test_any_and_all_match_numpy_over_axes_and_give_bool_tensors(name, device, data):
    shape = data.draw(shapes(max_dims=3), label="shape")
    dim, keepdim = data.draw(axes(len(shape)), label="dim"), data.draw(st.booleans(), label="keepdim")
    x = data.draw(index_arrays(shape, 2), label="x") * data.draw(st.sampled_from([1.5, -2.0]), label="scale")
    got = getattr(tensor(x, device), name)(dim, keepdim)
    assert got.dtype == tt.bool_ and got.device == tensor(x, device).device
    np.testing.assert_array_equal(got.numpy(), getattr(np, name)(x, axis=dim, keepdims=keepdim))


def test_any_and_all_of_nothing_are_false_and_true():
    assert tt.zeros(0).any().item() is False and tt.zeros(0).all().item() is True


# ---- linear algebra ----------------------------------------------------------------------------------------------
sides = st.integers(1, 4)


@op_settings
@given(data=st.data(), n=sides, m=sides, p=sides, batch=sides)
def test_strict_matrix_products_match_numpy_and_finite_differences(device, data, n, m, p, batch):
    def draw(*shape):
        return data.draw(arrays(shape))

    check_op(tt.mm, np.matmul, draw(n, m), draw(m, p), device=device)
    check_op(lambda a, b: a.bmm(b), np.matmul, draw(batch, n, m), draw(batch, m, p), device=device)
    check_op(lambda a, v: a.mv(v), np.matmul, draw(n, m), draw(m), device=device)
    check_op(tt.dot, np.dot, draw(m), draw(m), device=device)
    check_op(lambda a, b: a.outer(b), np.outer, draw(n), draw(p), device=device)


@op_settings
@given(data=st.data(), n=sides, m=sides, p=sides, batch=sides, beta=st.sampled_from([1, 0.5, -2.0]),
       alpha=st.sampled_from([1, 0.25, 3.0]))
def test_addmm_and_baddbmm_match_numpy_and_finite_differences(device, data, n, m, p, batch, beta, alpha):
    input_shape = data.draw(st.sampled_from([(n, p), (p,), (1, p), (n, 1), ()]), label="input shape")
    check_op(lambda c, a, b: tt.addmm(c, a, b, beta=beta, alpha=alpha), lambda c, a, b: beta * c + alpha * (a @ b),
             data.draw(arrays(input_shape)), data.draw(arrays((n, m))), data.draw(arrays((m, p))), device=device)
    check_op(lambda c, a, b: c.baddbmm(a, b, beta=beta, alpha=alpha), lambda c, a, b: beta * c + alpha * (a @ b),
             data.draw(arrays(input_shape)), data.draw(arrays((batch, n, m))), data.draw(arrays((batch, m, p))),
             device=device)


def test_addmm_with_beta_zero_ignores_nan_and_inf_in_input():
    out = tt.addmm(tt.tensor([np.nan, np.inf]), tt.ones(3, 2), tt.ones(2, 2), beta=0, alpha=0.5)
    assert out.tolist() == [[1.0, 1.0]] * 3


@pytest.mark.parametrize(("op", "shapes_", "message"), [
    (tt.mm, ((2, 3), (3,)), r"mm: expected 2-D tensors, got \(2, 3\) and \(3,\)"),
    (tt.mm, ((2, 3), (4, 2)), r"mm: shapes \(2, 3\) and \(4, 2\) do not align \(3 != 4\)"),
    (tt.bmm, ((2, 3), (3, 4)), r"bmm: expected 3-D tensors, got \(2, 3\) and \(3, 4\)"),
    (tt.bmm, ((2, 3, 4), (1, 4, 5)), r"bmm: batch sizes differ, got \(2, 3, 4\) and \(1, 4, 5\)"),
    (tt.bmm, ((2, 3, 4), (2, 3, 5)), r"bmm: shapes \(2, 3, 4\) and \(2, 3, 5\) do not align"),
    (tt.mv, ((2, 3), (3, 1)), r"mv: expected a 2-D matrix and a 1-D vector, got \(2, 3\) and \(3, 1\)"),
    (tt.mv, ((2, 3), (2,)), r"mv: shapes \(2, 3\) and \(2,\) do not align"),
    (tt.dot, ((3,), (4,)), r"dot: shapes \(3,\) and \(4,\) do not align"),
    (tt.dot, ((3, 1), (3,)), r"dot: expected 1-D tensors, got \(3, 1\) and \(3,\)"),
    (tt.outer, ((3,), (2, 2)), r"outer: expected 1-D tensors, got \(3,\) and \(2, 2\)"),
])
def test_strict_products_name_the_op_and_both_shapes_in_their_errors(op, shapes_, message):
    with pytest.raises(ValueError, match=message):
        op(*(tt.ones(*shape) for shape in shapes_))


def test_addmm_and_baddbmm_refuse_an_input_that_would_grow_the_product():
    with pytest.raises(ValueError, match=r"addmm: input of shape \(2, 2, 3\) cannot be broadcast to the "
                                         r"product's shape \(2, 3\)"):
        tt.addmm(tt.ones(2, 2, 3), tt.ones(2, 4), tt.ones(4, 3))
    with pytest.raises(ValueError, match=r"baddbmm: input of shape \(4,\) cannot be broadcast"):
        tt.baddbmm(tt.ones(4), tt.ones(1, 2, 4), tt.ones(1, 4, 3))


# ---- pointwise combinations --------------------------------------------------------------------------------------
# name: (op of three tensors, NumPy reference, strategy of the third operand's values)
TERNARY = {
    "lerp": (tt.lerp, lambda s, e, w: s + w * (e - s), arrays),
    "lerp_scalar_weight": (lambda s, e, _: s.lerp(e, 0.3), lambda s, e, _: s + 0.3 * (e - s), arrays),
    "addcmul": (lambda a, b, c: a.addcmul(b, c, value=-0.5), lambda a, b, c: a - 0.5 * b * c, arrays),
    "addcdiv": (lambda a, b, c: tt.addcdiv(a, b, c, value=2), lambda a, b, c: a + 2 * b / c, _nonzero),
    "addcdiv_default": (tt.addcdiv, lambda a, b, c: a + b / c, _nonzero),
}


@pytest.mark.parametrize("name", TERNARY)
@op_settings
@given(data=st.data())
def test_pointwise_combination_matches_numpy_and_finite_differences_over_broadcast_shapes(name, device, data):
    op, reference, third_values = TERNARY[name]
    first, second, third = data.draw(broadcastable_shapes(3), label="shapes")
    check_op(op, reference, data.draw(arrays(first)), data.draw(arrays(second)), data.draw(third_values(third)),
             device=device)


# ---- in place ----------------------------------------------------------------------------------------------------
# name: (in-place call, the same op out of place), each taking the tensor and one other float64 operand
IN_PLACE_OPS = {
    "abs_": (lambda t, o: t.abs_(), lambda t, o: t.abs()),
    "sqrt_": (lambda t, o: (t * t + 1).sqrt_(), lambda t, o: (t * t + 1).sqrt()),
    "exp_": (lambda t, o: t.exp_(), lambda t, o: t.exp()),
    "log_": (lambda t, o: (t * t + 1).log_(), lambda t, o: (t * t + 1).log()),
    "neg_": (lambda t, o: t.neg_(), lambda t, o: -t),
    "sigmoid_": (lambda t, o: t.sigmoid_(), lambda t, o: t.sigmoid()),
    "tanh_": (lambda t, o: t.tanh_(), lambda t, o: t.tanh()),
    "relu_": (lambda t, o: t.relu_(), lambda t, o: t.relu()),
    "clamp_min_": (lambda t, o: t.clamp_min_(0.5), lambda t, o: t.clamp_min(0.5)),
    "clamp_max_": (lambda t, o: t.clamp_max_(-0.5), lambda t, o: t.clamp_max(-0.5)),
    "floor_": (lambda t, o: t.floor_(), lambda t, o: t.floor()),
    "round_": (lambda t, o: t.round_(), lambda t, o: t.round()),
    "remainder_": (lambda t, o: t.remainder_(0.75), lambda t, o: t % 0.75),
    "imod": (lambda t, o: t.__imod__(0.75), lambda t, o: t % 0.75),
    "floor_divide_": (lambda t, o: t.floor_divide_(0.75), lambda t, o: t // 0.75),
    "lerp_": (lambda t, o: t.lerp_(o, 0.25), lambda t, o: t.lerp(o, 0.25)),
    "lerp_tensor_weight": (lambda t, o: t.lerp_(o * 2, o), lambda t, o: t.lerp(o * 2, o)),
    "addcmul_": (lambda t, o: t.addcmul_(o, o, value=0.5), lambda t, o: t.addcmul(o, o, value=0.5)),
    "addcdiv_": (lambda t, o: t.addcdiv_(o, o * o + 1), lambda t, o: t.addcdiv(o, o * o + 1)),
}


@pytest.mark.parametrize("name", IN_PLACE_OPS)
@op_settings
@given(data=st.data())
def test_in_place_op_on_a_non_leaf_equals_the_out_of_place_op_in_value_and_gradient(name, device, data):
    in_place, out_of_place = IN_PLACE_OPS[name]
    shape, other_shape = data.draw(broadcastable_shapes(2, min_dims=1), label="shapes")
    shape = np.broadcast_shapes(shape, other_shape)  # the tensor itself never grows
    x = data.draw(grid_arrays(shape, offset=0.1 / 1.5), label="x")  # after * 1.5: off every kink and jump
    other = data.draw(arrays(other_shape), label="other")

    def through_in_place(x, other):
        hidden = x * 1.5  # a non-leaf, so in-place is allowed while recording
        return in_place(hidden, other) * 2

    expected = out_of_place(tensor(x * 1.5, dtype=tt.float64), tensor(other, dtype=tt.float64)).numpy() * 2
    np.testing.assert_allclose(through_in_place(tensor(x, device, tt.float64), tensor(other, device, tt.float64))
                               .numpy(), expected, rtol=1e-12, atol=1e-15)
    check_gradient(through_in_place, x, other, device=device)


def test_new_in_place_ops_write_into_memory_under_no_grad_and_refuse_leaves_that_require_grad():
    weight = tt.tensor([-1.25, 2.5], requires_grad=True)
    with pytest.raises(RuntimeError, match="lerp_: a leaf tensor that requires grad"):
        weight.lerp_(tt.zeros(2), 0.5)
    array = weight.data
    with tt.no_grad():
        weight.abs_().addcmul_(tt.ones(2), tt.ones(2), value=2).round_()
    assert weight.data is array and weight.tolist() == [3.0, 4.0]
    counts = tt.tensor([7, 8])
    alias, same = counts.data, counts
    counts %= 3
    counts //= 2
    assert counts is same and counts.data is alias and alias.tolist() == [0, 1]


# ---- integer inputs ----------------------------------------------------------------------------------------------
def test_forward_only_checks_for_integer_inputs_of_square_and_strict_products():
    ints = np.array([[1, -2], [3, 4]])
    assert tt.square(tt.tensor(ints)).dtype == tt.int64
    check_forward(lambda a: a.square() + a.mm(a).float(), lambda a: a * a + a @ a, ints.astype(np.float64))
    assert tt.dot(tt.tensor([1, 2]), tt.tensor([3, 4])).item() == 11
    assert math.isclose(tt.mv(tt.tensor(ints), tt.tensor([0.5, 1.0])).tolist()[1], 5.5)



@op_settings
@given(data=st.data())
def test_atan2_logaddexp_and_hypot_match_numpy_and_finite_differences(device, data):
    shape_y, shape_x = data.draw(broadcastable_shapes(2), label="shapes")
    y, x = data.draw(_nonzero(shape_y), label="y"), data.draw(_nonzero(shape_x), label="x")
    check_op(tt.atan2, np.arctan2, y, x, device=device)
    check_op(lambda a, b: a.logaddexp(b), np.logaddexp, y, x, device=device)
    check_op(tt.hypot, np.hypot, y, x, device=device)


@few
@given(data=st.data())
def test_trigonometric_and_hyperbolic_ops_differentiate_twice(data):
    x = tt.tensor(data.draw(arrays((3,), low=-0.8, high=0.8)), requires_grad=True)
    for op in (tt.tan, tt.asin, tt.acos, tt.atan, tt.sinh, tt.cosh):
        assert tt.gradgradcheck(op, [x])
    other = tt.tensor(data.draw(_nonzero((3,))), requires_grad=True)
    assert tt.gradgradcheck(tt.atan2, [x, other])


def test_logaddexp_stays_finite_for_large_inputs():
    big = tt.tensor([1e4, -1e4, 1e4], dtype=tt.float64)
    np.testing.assert_allclose(tt.logaddexp(big, tt.tensor([1e4, -1e4, -1e4], dtype=tt.float64)).numpy(),
                               [1e4 + math.log(2), -1e4 + math.log(2), 1e4])
