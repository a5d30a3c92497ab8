"""In-place ops (tinytensor/ops/inplace.py): PyTorch's rules for leaves, gradients through in-place ops on
non-leaves, writes that reach every alias, and the check that refuses a backward through overwritten values."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, bool_masks, broadcastable_shapes, check_gradient, op_settings, tensor

import tinytensor as tt
import tinytensor.nn as nn

# name: (in-place call, the same op out of place), each taking the tensor and one other float64 operand
IN_PLACE_OPS = {
    "add_": (lambda t, o: t.add_(o), lambda t, o: t + o),
    "add_alpha": (lambda t, o: t.add_(o, alpha=-0.5), lambda t, o: t - 0.5 * o),
    "sub_": (lambda t, o: t.sub_(o), lambda t, o: t - o),
    "mul_": (lambda t, o: t.mul_(o), lambda t, o: t * o),
    "div_": (lambda t, o: t.div_(o * o + 1), lambda t, o: t / (o * o + 1)),
    "iadd": (lambda t, o: t.__iadd__(o), lambda t, o: t + o),
    "imul": (lambda t, o: t.__imul__(o), lambda t, o: t * o),
    "clamp_": (lambda t, o: t.clamp_(-0.5, 0.5), lambda t, o: t.clamp(-0.5, 0.5)),
    "copy_": (lambda t, o: t.copy_(o), lambda t, o: o.expand(*t.shape)),
    "fill_": (lambda t, o: t.fill_(0.25), lambda t, o: t * 0 + 0.25),
    "zero_": (lambda t, o: t.zero_(), lambda t, o: t * 0),
}


@pytest.mark.parametrize("name", IN_PLACE_OPS)
@op_settings
@given(data=st.data())
def test_in_place_op_on_a_non_leaf_equals_the_out_of_place_op_in_value_and_gradient(name, device, data):
    in_place, out_of_place = IN_PLACE_OPS[name]
    shape, other_shape = data.draw(broadcastable_shapes(2, min_dims=1), label="shapes")
    shape = np.broadcast_shapes(shape, other_shape)  # the tensor itself never grows
    x = data.draw(arrays(shape, away_from=(-0.5 / 1.5, 0.5 / 1.5)), label="x")  # clamp_'s kinks, after * 1.5
    other = data.draw(arrays(other_shape), label="other")

    def through_in_place(x, other):
        hidden = x * 1.5  # a non-leaf, so in-place is allowed while recording
        return in_place(hidden, other) * 2

    expected = out_of_place(tensor(x * 1.5), tensor(other)).numpy() * 2
    np.testing.assert_allclose(through_in_place(tensor(x, device, tt.float64), tensor(other, device, tt.float64))
                               .numpy(), expected, rtol=1e-12)
    check_gradient(through_in_place, x, other, device=device)


@op_settings
@given(data=st.data())
def test_masked_fill_in_place_matches_masked_fill_and_finite_differences(device, data):
    shape, mask_shape = data.draw(broadcastable_shapes(2, min_dims=1), label="shapes")
    shape = np.broadcast_shapes(shape, mask_shape)
    x, mask = data.draw(arrays(shape), label="x"), data.draw(bool_masks(mask_shape), label="mask")
    expected = np.where(mask, -1.0, x * 3)
    np.testing.assert_array_equal((tensor(x, device) * 3).masked_fill_(tensor(mask, device), -1.0).numpy(), expected)
    check_gradient(lambda x: (x * 3).masked_fill_(tensor(mask, device), -1.0), x, device=device)


def test_in_place_on_a_leaf_that_requires_grad_is_refused_outside_no_grad_and_allowed_inside():
    weight = tt.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf tensor that requires grad cannot be changed in place"):
        weight.add_(1)
    with pytest.raises(RuntimeError, match="a leaf tensor that requires grad"):
        weight -= 1
    array = weight.data
    with tt.no_grad():
        weight -= 0.5 * tt.ones(3)  # the manual SGD step of every tutorial
        weight.mul_(2)
    assert weight.data is array and weight.tolist() == [1.0, 1.0, 1.0]
    assert weight.is_leaf and weight.requires_grad


def test_in_place_writes_reach_every_alias_of_the_memory():
    layer = nn.Linear(2, 3)
    state = layer.state_dict()
    with tt.no_grad():
        state["weight"].copy_(tt.arange(6, dtype=tt.float64).view(3, 2))  # cast to float32 and written through
        state["bias"].zero_()
        row = layer.weight[0]
        row.fill_(7.0)
    assert layer.weight.dtype == tt.float32
    np.testing.assert_array_equal(layer.weight.numpy(), [[7.0, 7.0], [2.0, 3.0], [4.0, 5.0]])
    np.testing.assert_array_equal(layer.bias.numpy(), [0.0, 0.0, 0.0])


def test_backward_through_values_overwritten_in_place_is_refused_like_pytorchs_version_counter():
    weight = tt.ones(3, dtype=tt.float64, requires_grad=True)
    inputs = tt.tensor([1.0, 2.0, 3.0], dtype=tt.float64)
    product = (inputs * weight).sum()  # saves `inputs` for weight's gradient
    inputs.mul_(2)
    with pytest.raises(RuntimeError, match="saved for backward was modified by an in-place operation"):
        product.backward()


def test_backward_refuses_values_overwritten_through_an_alias_or_item_assignment():
    weight = tt.ones(3, dtype=tt.float64, requires_grad=True)
    inputs = tt.tensor([1.0, 2.0, 3.0], dtype=tt.float64)
    product = (inputs * weight).sum()
    inputs.detach()[0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        product.backward()


def test_in_place_on_values_no_node_saved_leaves_backward_alone():
    weight = tt.ones(3, dtype=tt.float64, requires_grad=True)
    inputs = tt.tensor([1.0, 2.0, 3.0], dtype=tt.float64)
    total = (inputs + weight).sum()  # addition saves nothing
    inputs.add_(1)
    total.backward()
    assert weight.grad.tolist() == [1.0, 1.0, 1.0]


def test_in_place_on_a_tensor_that_does_not_require_grad_can_join_the_graph():
    weight = tt.tensor([1.0, 2.0], dtype=tt.float64, requires_grad=True)
    buffer = tt.zeros(2, dtype=tt.float64)
    buffer.add_(weight * weight)
    assert buffer.requires_grad and not buffer.is_leaf
    buffer.sum().backward()
    assert weight.grad.tolist() == [2.0, 4.0]


def test_random_in_place_fills_draw_from_the_seeded_generator_in_the_tensors_dtype():
    tt.manual_seed(3)
    first = tt.empty(1000, dtype=tt.float64).normal_(2.0, 0.5)
    tt.manual_seed(3)
    again = tt.empty(1000, dtype=tt.float64).normal_(2.0, 0.5)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    assert abs(first.mean().item() - 2.0) < 0.1 and abs(first.std().item() - 0.5) < 0.05
    uniform = tt.zeros(1000).uniform_(-1, 3)
    assert uniform.dtype == tt.float32 and -1 <= uniform.min().item() and uniform.max().item() < 3


def test_an_in_place_op_cannot_grow_the_tensor():
    with pytest.raises(RuntimeError, match=r"must keep the tensor's shape \(3,\)"):
        tt.zeros(3).add_(tt.ones(2, 3))
