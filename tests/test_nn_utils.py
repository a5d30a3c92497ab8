"""Tests for tinytensor.nn.utils.clip_grad_norm_: PyTorch's formula, computed by hand with NumPy."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.nn as nn  # noqa: PLR0402 - DESIGN.md spelling; `from tinytensor import nn` hits tt.ops.nn


def params_with_grads(shapes, seed, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = []
    for shape in shapes:
        param = nn.Parameter(np.zeros(shape, dtype=dtype))
        param.grad = tt.tensor((scale * rng.standard_normal(shape)).astype(dtype))
        params.append(param)
    return params


shape_lists = st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple), min_size=1, max_size=3)


@given(shape_lists, st.sampled_from([2.0, 1.0, 3.0, math.inf]), st.floats(0.1, 10.0), st.floats(0.1, 10.0),
       st.integers(0, 99))
def test_clip_grad_norm_matches_the_formula_and_returns_the_norm_before_clipping(shapes, norm_type, max_norm,
                                                                                  scale, seed):
    params = params_with_grads(shapes, seed, scale)
    grads = [p.grad.numpy().copy() for p in params]
    flat = np.concatenate([g.ravel() for g in grads])
    total = np.abs(flat).max() if norm_type == math.inf else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    coef = min(max_norm / (total + 1e-6), 1.0)
    returned = nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    assert returned.shape == () and returned.item() == pytest.approx(total, rel=1e-12)
    for param, grad in zip(params, grads):
        np.testing.assert_allclose(param.grad.numpy(), grad * coef, rtol=1e-12)


def test_gradients_under_the_limit_are_left_unchanged():
    params = params_with_grads([(3,)], seed=0, scale=0.01)
    before = params[0].grad.numpy().copy()
    nn.utils.clip_grad_norm_(params, max_norm=10.0)
    np.testing.assert_array_equal(params[0].grad.numpy(), before)


def test_parameters_without_gradients_are_skipped_and_none_at_all_gives_zero():
    params = params_with_grads([(2,)], seed=0)
    expected = np.linalg.norm(params[0].grad.numpy())
    bare = nn.Parameter(np.zeros(3))
    assert nn.utils.clip_grad_norm_([bare, *params], 1.0).item() == pytest.approx(expected, rel=1e-12)
    assert bare.grad is None
    assert nn.utils.clip_grad_norm_([bare], 1.0).item() == 0.0


def test_clipping_assigns_new_arrays_instead_of_mutating_shared_ones():
    param = params_with_grads([(4,)], seed=0, scale=10.0)[0]
    shared = param.grad.data
    before = shared.copy()
    nn.utils.clip_grad_norm_(param, 1.0)
    assert param.grad.data is not shared
    np.testing.assert_array_equal(shared, before)


def test_float32_gradients_stay_float32():
    params = params_with_grads([(3, 2)], seed=0, scale=5.0, dtype=np.float32)
    norm = nn.utils.clip_grad_norm_(params, 1.0)
    assert norm.dtype == tt.float32 and params[0].grad.dtype == tt.float32


def test_non_finite_norm_raises_only_when_asked():
    params = params_with_grads([(2,)], seed=0)
    params[0].grad.data[0] = np.inf
    with pytest.raises(RuntimeError, match="inf"):
        nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with np.errstate(invalid="ignore"):  # inf · 0 gives NaN gradients, as in PyTorch
        assert math.isinf(nn.utils.clip_grad_norm_(params, 1.0).item())


def test_clip_grad_norm_clips_a_real_models_gradients(device):
    model = nn.Linear(3, 2).to(device)
    (model(tt.ones(4, 3, device=device)) * 100.0).sum().backward()
    total = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    assert total.device == device and total.item() > 0.5
    clipped = math.sqrt(sum(float((p.grad.numpy().astype(np.float64) ** 2).sum()) for p in model.parameters()))
    assert clipped == pytest.approx(0.5, rel=1e-5)


def test_clip_grad_value_clamps_each_element_and_leaves_missing_gradients_alone():
    a, b = tt.zeros(3, requires_grad=True), tt.zeros(2, requires_grad=True)
    a.grad = tt.tensor([-5.0, 0.5, 7.0])
    shared = a.grad.data
    tt.nn.utils.clip_grad_value_([a, b], 1.0)
    assert a.grad.tolist() == [-1.0, 0.5, 1.0] and b.grad is None and shared.tolist() == [-5.0, 0.5, 7.0]


def test_parameters_to_vector_and_back():
    model = tt.nn.Linear(3, 2)
    vector = tt.nn.utils.parameters_to_vector(model.parameters())
    assert vector.shape == (8,) and vector[:6].tolist() == model.weight.reshape(-1).tolist()
    tt.nn.utils.vector_to_parameters(tt.arange(8).float(), model.parameters())
    assert model.weight.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and model.bias.tolist() == [6.0, 7.0]
    with pytest.raises(ValueError, match="the vector has 7 elements"):
        tt.nn.utils.vector_to_parameters(tt.zeros(7), model.parameters())


def test_pad_sequence_pads_right_or_left_batch_first_or_not_and_passes_gradients():
    from tinytensor.nn.utils.rnn import pad_sequence

    a = tt.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], requires_grad=True)
    b = tt.tensor([[4.0, 4.0]], requires_grad=True)
    batch = pad_sequence([a, b], batch_first=True, padding_value=-1.0)
    assert batch.tolist() == [[[1, 1], [2, 2], [3, 3]], [[4, 4], [-1, -1], [-1, -1]]]
    assert pad_sequence([a, b]).shape == (3, 2, 2)
    assert pad_sequence([a, b], batch_first=True, padding_side="left")[1].tolist() == [[0, 0], [0, 0], [4, 4]]
    (batch * tt.arange(12).float().reshape(2, 3, 2)).sum().backward()
    assert b.grad.tolist() == [[6.0, 7.0]] and a.grad.tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    with pytest.raises(ValueError, match="must agree after their first axis"):
        pad_sequence([a, tt.zeros(2, 3)])
