"""Tests for tinytensor.nn.layers: gradients against finite differences (float64), values against NumPy formulas,
PyTorch's initialisation, and mode/dtype behaviour."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.nn as nn  # noqa: PLR0402 - DESIGN.md spelling; `from tinytensor import nn` hits tt.ops.nn

F64 = tt.float64
lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)
features = st.integers(1, 4)


def random_input(shape, seed=0, dtype=np.float64):
    return tt.tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True)


def scramble(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter random values, so a weight of ones or a bias of zeros cannot hide a wrong gradient."""
    rng = np.random.default_rng(seed)
    for param in module.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    return module


def check_module_gradients(module: nn.Module, x) -> None:
    """Gradients w.r.t. the input and every parameter match finite differences."""
    inputs = [x, *module.parameters()]
    assert tt.gradcheck(lambda x, *params: module(x), inputs)


# ---- gradients -----------------------------------------------------------------------------------------------------
@given(lead_shapes, features, features, st.booleans(), st.integers(0, 99))
def test_linear_gradients_match_finite_differences(lead, in_features, out_features, bias, seed):
    layer = scramble(nn.Linear(in_features, out_features, bias=bias, dtype=F64), seed)
    check_module_gradients(layer, random_input((*lead, in_features), seed))


@given(lead_shapes, st.integers(2, 4), st.booleans(), st.booleans(), st.integers(0, 99))
def test_layer_norm_gradients_match_finite_differences(lead, width, affine, bias, seed):
    norm = scramble(nn.LayerNorm(width, elementwise_affine=affine, bias=bias, dtype=F64), seed)
    check_module_gradients(norm, random_input((*lead, width), seed))


@given(lead_shapes, features, st.integers(0, 99))
def test_rms_norm_gradients_match_finite_differences(lead, width, seed):
    norm = scramble(nn.RMSNorm(width, dtype=F64), seed)
    check_module_gradients(norm, random_input((*lead, width), seed))


@given(lead_shapes, st.lists(st.integers(1, 3), min_size=2, max_size=3).map(tuple), st.integers(0, 99))
def test_norms_over_several_axes_gradients_match_finite_differences(lead, normalized_shape, seed):
    for norm in (nn.LayerNorm(normalized_shape, dtype=F64), nn.RMSNorm(normalized_shape, dtype=F64)):
        assert norm.weight.shape == normalized_shape
        check_module_gradients(scramble(norm, seed), random_input((*lead, *normalized_shape), seed))


@given(lead_shapes, st.integers(1, 4), st.integers(1, 4), st.integers(0, 99), st.data())
def test_embedding_gradients_match_finite_differences(lead, vocab, width, seed, data):
    ids = np.array(data.draw(st.lists(st.integers(0, vocab - 1), min_size=math.prod(lead), max_size=math.prod(lead))))
    table = scramble(nn.Embedding(vocab, width, dtype=F64), seed)
    assert tt.gradcheck(lambda weight: table(ids.reshape(lead)), [table.weight])


@given(lead_shapes, features, st.integers(1, 4), st.booleans(), st.integers(0, 99))
def test_swiglu_gradients_match_finite_differences(lead, dim, hidden, bias, seed):
    mlp = scramble(nn.SwiGLU(dim, hidden, bias=bias, dtype=F64), seed)
    check_module_gradients(mlp, random_input((*lead, dim), seed))


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient():
    table = nn.Embedding(4, 3, padding_idx=-1, dtype=F64)
    assert table.padding_idx == 3 and not table.weight.numpy()[3].any()
    table(np.array([3, 1, 3])).sum().backward()
    np.testing.assert_array_equal(table.weight.grad.numpy(), [[0] * 3, [1] * 3, [0] * 3, [0] * 3])


# ---- values -------------------------------------------------------------------------------------------------------
def test_linear_computes_x_times_weight_transposed_plus_bias():
    layer = nn.Linear(3, 2, dtype=F64)
    x = np.random.default_rng(0).standard_normal((4, 3))
    expected = x @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(tt.tensor(x)).numpy(), expected, rtol=1e-14)


def test_layer_norm_and_rms_norm_match_their_formulas():
    x = np.random.default_rng(0).standard_normal((2, 4))
    layer_norm, rms_norm = scramble(nn.LayerNorm(4, eps=1e-3, dtype=F64)), scramble(nn.RMSNorm(4, eps=1e-3, dtype=F64))
    centered = x - x.mean(-1, keepdims=True)
    expected = centered / np.sqrt((centered**2).mean(-1, keepdims=True) + 1e-3)
    expected = expected * layer_norm.weight.numpy() + layer_norm.bias.numpy()
    np.testing.assert_allclose(layer_norm(tt.tensor(x)).numpy(), expected, rtol=1e-12)
    expected = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-3) * rms_norm.weight.numpy()
    np.testing.assert_allclose(rms_norm(tt.tensor(x)).numpy(), expected, rtol=1e-12)


def test_norms_start_as_weight_ones_and_bias_zeros_with_optional_parts_absent():
    norm = nn.LayerNorm(3)
    assert norm.weight.tolist() == [1, 1, 1] and norm.bias.tolist() == [0, 0, 0]
    assert [name for name, _ in nn.LayerNorm(3, bias=False).named_parameters()] == ["weight"]
    assert list(nn.LayerNorm(3, elementwise_affine=False).parameters()) == []
    assert nn.RMSNorm(3).weight.tolist() == [1, 1, 1] and nn.RMSNorm(3).eps == 1e-6


def test_activations_match_their_formulas():
    x = np.linspace(-3, 3, 13)
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(nn.GELU()(tt.tensor(x)).numpy(), 0.5 * x * (1 + erf(x / math.sqrt(2))), rtol=1e-12)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(nn.GELU("tanh")(tt.tensor(x)).numpy(), tanh_form, rtol=1e-12)
    np.testing.assert_allclose(nn.ReLU()(tt.tensor(x)).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(nn.SiLU()(tt.tensor(x)).numpy(), x / (1 + np.exp(-x)), rtol=1e-12)


def test_swiglu_is_down_of_silu_gate_times_up_with_hugging_face_names():
    mlp = nn.SwiGLU(3, 5, dtype=F64)
    assert {name: p.shape for name, p in mlp.named_parameters()} == {
        "gate_proj.weight": (5, 3), "up_proj.weight": (5, 3), "down_proj.weight": (3, 5)}
    x = np.random.default_rng(0).standard_normal((2, 3))
    gate, up = x @ mlp.gate_proj.weight.numpy().T, x @ mlp.up_proj.weight.numpy().T
    expected = (gate / (1 + np.exp(-gate)) * up) @ mlp.down_proj.weight.numpy().T
    np.testing.assert_allclose(mlp(tt.tensor(x)).numpy(), expected, rtol=1e-12)


# ---- initialisation -----------------------------------------------------------------------------------------------
def test_linear_init_fills_uniform_plus_minus_one_over_sqrt_fan_in():
    layer = nn.Linear(50, 200)
    bound = 1 / math.sqrt(50)
    for values in (layer.weight.numpy(), layer.bias.numpy()):
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.97 * bound
    assert abs(layer.weight.numpy().std() - bound / math.sqrt(3)) < 0.02 * bound


def test_embedding_init_is_standard_normal():
    weight = nn.Embedding(400, 50).weight.numpy()
    assert abs(weight.mean()) < 0.02 and abs(weight.std() - 1) < 0.02


def test_layers_are_reproducible_from_the_seed():
    tt.manual_seed(3)
    first = nn.Linear(3, 3).weight.numpy()
    tt.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.numpy(), first)


# ---- modes and dtypes ---------------------------------------------------------------------------------------------
def test_dropout_is_identity_in_eval_and_drops_with_inverted_scaling_in_training():
    dropout = nn.Dropout(0.25)
    x = tt.ones(4000)
    dropped = dropout(x).numpy()
    assert set(np.unique(dropped)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((dropped == 0).mean() - 0.25) < 0.03
    dropout.eval()
    assert dropout(x) is x


def test_dropout_refuses_probabilities_outside_zero_to_one():
    with pytest.raises(ValueError, match="dropout probability"):
        nn.Dropout(1.0)


def test_float32_layers_stay_float32():
    x = random_input((2, 3), dtype=np.float32)
    for layer in (nn.Linear(3, 3), nn.LayerNorm(3), nn.RMSNorm(3), nn.SwiGLU(3, 4), nn.GELU(), nn.Dropout(0.1)):
        assert layer(x).dtype == tt.float32, type(layer).__name__
    assert nn.Embedding(3, 2)(np.array([0, 2])).dtype == tt.float32
