"""Division that rounds (tinytensor/ops/rounding.py): `//`, `%`, fmod against NumPy, backward against finite
differences.

Values sit on grids that keep every quotient a/b at least 0.05 away from an integer, so float32 rounds like float64
and finite differences never straddle a jump: a = 0.25·k + 0.1 and b ∈ {±0.5, ±0.75, ±1, ±2}.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import broadcastable_shapes, check_forward, check_gradient, check_op, op_settings, tensor

import tinytensor as tt


def dividends(shape):
    return hnp.arrays(np.int64, shape, elements=st.integers(-12, 12)).map(lambda ticks: ticks * 0.25 + 0.1)


def divisors(shape):
    return hnp.arrays(np.float64, shape, elements=st.sampled_from([-2.0, -1.0, -0.75, -0.5, 0.5, 0.75, 1.0, 2.0]))


ROUNDING = {
    "remainder": (lambda a, b: a % b, np.remainder),
    "remainder_function": (tt.remainder, np.remainder),
    "fmod": (tt.fmod, np.fmod),
    "floor_divide": (lambda a, b: a // b, np.floor_divide),
    "floor_divide_function": (tt.floor_divide, np.floor_divide),
}


@pytest.mark.parametrize("name", ROUNDING)
@op_settings
@given(data=st.data())
def test_rounding_division_matches_numpy_and_finite_differences_over_broadcast_shapes(name, device, data):
    op, reference = ROUNDING[name]
    shape_a, shape_b = data.draw(broadcastable_shapes(2), label="shapes")
    a, b = data.draw(dividends(shape_a), label="a"), data.draw(divisors(shape_b), label="b")
    check_op(op, reference, a, b, device=device)


@op_settings
@given(data=st.data())
def test_python_numbers_on_either_side_follow_python_signs(device, data):
    a = data.draw(dividends(data.draw(hnp.array_shapes(max_dims=2, max_side=4), label="shape")), label="a")
    check_op(lambda x: x % -0.75, lambda x: np.remainder(x, -0.75), a, device=device)
    check_op(lambda x: x // 0.5, lambda x: np.floor_divide(x, 0.5), a, device=device)
    check_forward(lambda x: 7.3 % (x + 20), lambda x: np.remainder(7.3, x + 20), a, device=device)
    check_forward(lambda x: 7.3 // (x + 20), lambda x: np.floor_divide(7.3, x + 20), a, device=device)


def test_remainder_takes_the_divisors_sign_and_fmod_the_dividends_as_in_pytorch():
    values = tt.tensor([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal((values % 2).numpy(), [1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(tt.fmod(values, 2).numpy(), [-1.0, -0.0, -1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(tt.fmod(tt.tensor([1, 2, 3, 4, 5]), -1.5).numpy(), [1.0, 0.5, 0.0, 1.0, 0.5])
    np.testing.assert_array_equal((tt.tensor([-7.5, 7.5]) // 2).numpy(), [-4.0, 3.0])


@given(a=hnp.arrays(np.int64, 6, elements=st.integers(-50, 50)),
       b=hnp.arrays(np.int64, 6, elements=st.integers(-9, 9).filter(bool)))
def test_integer_tensors_stay_integers_and_match_python(a, b):
    for op, python in ((lambda x, y: x % y, lambda x, y: x % y), (lambda x, y: x // y, lambda x, y: x // y),
                       (tt.fmod, np.fmod)):
        out = op(tt.tensor(a), tt.tensor(b))
        assert out.dtype == tt.int64
        np.testing.assert_array_equal(out.numpy(), [python(x, y) for x, y in zip(a.tolist(), b.tolist())])


def test_integer_division_by_zero_raises_as_in_pytorch_and_float_division_gives_nan_or_inf():
    for op in (lambda x, y: x % y, lambda x, y: x // y, tt.fmod):
        with pytest.raises(ZeroDivisionError, match="integer division by zero"):
            op(tt.tensor([4, 5]), tt.tensor([2, 0]))
    with np.errstate(divide="ignore", invalid="ignore"):  # NumPy's warnings; PyTorch is silent
        assert np.isnan((tt.tensor([1.0]) % 0.0).item()) and np.isinf((tt.tensor([1.0]) // 0.0).item())


def test_floor_divide_passes_a_zero_gradient_and_the_remainders_minus_the_quotient_to_the_divisor():
    a = tensor(np.array([7.1, -7.1]), dtype=tt.float64, requires_grad=True)
    b = tensor(np.array([2.0, 2.0]), dtype=tt.float64, requires_grad=True)
    (a // b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0])
    a.grad = b.grad = None
    (a % b).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [-3.0, 4.0])      # −floor(±3.55)
    a.grad = b.grad = None
    tt.fmod(a, b).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [-3.0, 3.0])      # −trunc(±3.55)
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0])


def test_rounding_ops_compose_under_gradcheck_and_keep_float32_gradients_float32():
    check_gradient(lambda a, b: tt.fmod(a, b) + a // b, np.array([1.3, -2.6]), np.array([0.5, 0.75]))
    x = tt.tensor([1.3, -2.6], requires_grad=True)
    (x % 0.5).sum().backward()
    assert x.grad.dtype == tt.float32
