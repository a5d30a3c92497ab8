"""Tests for tinytensor.nn.init: PyTorch's formulas (bounds, standard deviations), in-place filling, seeding."""
import math

import numpy as np
import pytest

import tinytensor as tt
from tinytensor.nn import init

SAMPLES = (200, 100)  # 20,000 draws: sample std within ~1% of the truth


def empty(shape=SAMPLES, dtype=tt.float32, device="cpu"):
    return tt.zeros(*shape, dtype=dtype, device=device)


def test_init_functions_fill_in_place_and_return_the_same_tensor(device):
    tensor = empty((3, 4), device=device)
    array = tensor.data
    for fill in (init.normal_, init.uniform_, init.zeros_, init.ones_, init.xavier_uniform_, init.kaiming_uniform_,
                 init.trunc_normal_, lambda t: init.constant_(t, 0.5)):
        assert fill(tensor) is tensor and tensor.data is array
        assert tensor.dtype == tt.float32 and tensor.device == device


def test_normal_has_the_requested_mean_and_std():
    values = init.normal_(empty(), mean=3.0, std=0.5).numpy()
    assert abs(values.mean() - 3.0) < 0.02 and abs(values.std() - 0.5) < 0.01


def test_uniform_stays_within_its_bounds_and_covers_them():
    values = init.uniform_(empty(), -0.3, 0.7).numpy()
    assert values.min() >= -0.3 and values.max() < 0.7
    assert values.min() < -0.29 and values.max() > 0.69


def test_constant_zeros_and_ones_fill_every_element():
    assert (init.constant_(empty((2, 3)), 0.25).numpy() == 0.25).all()
    assert (init.ones_(empty((2, 3))).numpy() == 1).all()
    assert (init.zeros_(init.ones_(empty((2, 3)))).numpy() == 0).all()


def test_xavier_uniform_bound_is_gain_times_sqrt_six_over_fan_in_plus_fan_out():
    values = init.xavier_uniform_(empty((300, 100)), gain=2.0).numpy()
    bound = 2.0 * math.sqrt(6 / (100 + 300))
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.99 * bound


@pytest.mark.parametrize("a, mode, nonlinearity, fan", [
    (math.sqrt(5), "fan_in", "leaky_relu", 100),
    (0.0, "fan_in", "relu", 100),
    (0.0, "fan_out", "leaky_relu", 200),
])
def test_kaiming_uniform_bound_is_gain_times_sqrt_three_over_fan(a, mode, nonlinearity, fan):
    values = init.kaiming_uniform_(empty((200, 100)), a=a, mode=mode, nonlinearity=nonlinearity).numpy()
    gain = math.sqrt(2.0) if nonlinearity == "relu" else math.sqrt(2 / (1 + a**2))
    bound = gain * math.sqrt(3 / fan)
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.99 * bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.01 * bound


def test_trunc_normal_stays_within_absolute_bounds_with_the_truncated_std():
    values = init.trunc_normal_(empty(dtype=tt.float64), mean=0.5, std=1.0, a=-0.5, b=2.5).numpy()
    assert values.min() >= -0.5 and values.max() <= 2.5
    alpha, beta = -1.0, 2.0  # the bounds in std units around the mean
    pdf = [math.exp(-z * z / 2) / math.sqrt(2 * math.pi) for z in (alpha, beta)]
    mass = 0.5 * (math.erf(beta / math.sqrt(2)) - math.erf(alpha / math.sqrt(2)))
    mean = 0.5 + (pdf[0] - pdf[1]) / mass
    std = math.sqrt(1 + (alpha * pdf[0] - beta * pdf[1]) / mass - ((pdf[0] - pdf[1]) / mass) ** 2)
    assert abs(values.mean() - mean) < 0.015 and abs(values.std() - std) < 0.01


def test_trunc_normal_refuses_bounds_that_hold_almost_no_mass():
    with pytest.raises(ValueError, match="holds only"):
        init.trunc_normal_(empty((2, 2)), mean=0.0, std=1.0, a=10.0, b=11.0)


def test_calculate_gain_follows_pytorch():
    assert init.calculate_gain("linear") == 1.0 and init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(1 / 3)


def test_fans_need_two_dimensions_and_include_the_receptive_field():
    assert init.fan_in_and_fan_out(empty((4, 3, 5))) == (15, 20)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_uniform_(empty((4,)))


def test_draws_are_reproducible_from_manual_seed():
    tt.manual_seed(7)
    first = init.normal_(empty((3, 3))).numpy().copy()
    tt.manual_seed(7)
    np.testing.assert_array_equal(init.normal_(empty((3, 3))).numpy(), first)
