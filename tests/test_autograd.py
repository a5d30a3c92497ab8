"""The engine (tinytensor/autograd.py, tinytensor/tensor.py): graph walk, gradient accumulation, grad modes,
memory release, anomaly detection."""
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, broadcastable_shapes, shapes

import tinytensor as tt
from tinytensor import autograd
from tinytensor.autograd import Function


def leaf(values, dtype=tt.float64):
    return tt.tensor(np.asarray(values, dtype=np.float64), dtype=dtype, requires_grad=True)


def _graph_nodes(tensor) -> list:
    """Every Function reachable from `tensor`, by a plain walk (independent of the engine's own ordering)."""
    nodes, stack, seen = [], [tensor._node], set()
    while stack:
        node = stack.pop()
        if node is None or not isinstance(node, Function) or id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        stack.extend(node.next_steps)
    return nodes


# ---- graph walk --------------------------------------------------------------------------------------------------
def test_backward_through_a_100000_deep_chain_works_without_recursion():
    x = leaf([1.0, 2.0])
    y = x
    for _ in range(100_000):
        y = y * 1.0
    (y * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_a_reused_input_gets_the_sum_of_its_gradients():
    x = leaf([1.0, -2.0, 3.0])
    (x * x + x + x.exp() * x).sum().backward()
    values = x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * values + 1 + np.exp(values) * (1 + values), rtol=1e-15)


def test_a_reused_intermediate_gets_gradient_from_every_path_whatever_the_path_lengths():
    """r = a + 3a where the second use of a goes through one more op: a's node must run after both consumers."""
    x = leaf([1.0, 2.0])
    a = x * 2
    (a + a * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 8.0])
    y = leaf([1.0])
    b = y * 1.0
    long_path = b
    for _ in range(5):
        long_path = long_path * 1.0
    (long_path + b + (b * 2) * 2).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [6.0])


@given(st.integers(1, 6), st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=12))
def test_gradient_of_a_random_dag_matches_the_count_of_paths_times_weights(width, edges):
    """Each new node adds two earlier nodes (random picks); d(out)/dx equals the forward-mode derivative."""
    x = leaf([0.5])
    nodes, derivatives = [x], [1.0]
    for first, second in edges:
        i, j = first % len(nodes), second % len(nodes)
        nodes.append(nodes[i] * 2.0 + nodes[j])
        derivatives.append(2.0 * derivatives[i] + derivatives[j])
    chosen = nodes[-width:]
    total = chosen[0]
    for node in chosen[1:]:
        total = total + node
    total.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [sum(derivatives[-width:])], rtol=1e-12)


@given(broadcastable_shapes(2), st.data())
def test_sum_to_reduces_a_broadcast_gradient_to_the_input_shape(pair, data):
    shape, other = pair
    broadcast = np.broadcast_shapes(shape, other)
    grad = data.draw(arrays(broadcast))
    reduced = autograd.sum_to(grad, shape)
    assert reduced.shape == shape
    np.testing.assert_allclose(reduced.sum(), grad.sum(), rtol=1e-12, atol=1e-12)
    expected = grad.sum(axis=tuple(range(len(broadcast) - len(shape)))) if len(broadcast) > len(shape) else grad
    expected = expected.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True) if shape else expected
    np.testing.assert_allclose(reduced, np.reshape(expected, shape), rtol=1e-12, atol=1e-12)


# ---- backward twice, retain_graph, accumulation ------------------------------------------------------------------
def test_backward_twice_without_retain_graph_raises_an_error_that_says_what_to_do():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"a second time.*retain_graph=True"):
        y.backward()


def test_backward_twice_with_retain_graph_doubles_the_gradient():
    x = leaf([[1.0, 2.0], [0.5, -1.0]])
    targets = tt.tensor([1, 0])
    loss = (tt.cross_entropy(x.exp() * 2, targets) + tt.layer_norm(x, 2).sum() + (x @ x).tanh().sum()
            + tt.softmax(x, 0).max() + tt.scaled_dot_product_attention(x[None], x[None], x[None]).sum())
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-14)


def test_gradients_accumulate_across_two_backward_calls_until_zero_grad():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0 + 2.0, 3.0 + 4.0])
    x.zero_grad()
    assert x.grad is None


def test_leaf_gradient_is_a_private_copy_that_later_backward_calls_do_not_alias():
    x, upstream = leaf([1.0, 2.0]), tt.tensor([5.0, 6.0], dtype=tt.float64)
    x.backward(upstream)
    x.backward(upstream)
    np.testing.assert_array_equal(x.grad.numpy(), [10.0, 12.0])
    np.testing.assert_array_equal(upstream.numpy(), [5.0, 6.0])


def test_backward_on_a_leaf_puts_the_seed_gradient_in_its_grad():
    x = leaf(3.0)
    x.backward()
    assert x.grad.item() == 1.0
    vector = leaf([1.0, 2.0])
    vector.backward(tt.tensor([0.5, -1.0], dtype=tt.float64))
    np.testing.assert_array_equal(vector.grad.numpy(), [0.5, -1.0])


def test_non_scalar_backward_takes_the_gradient_of_the_output():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    y.backward(tt.tensor([[1.0, 0.0], [2.0, -1.0]], dtype=tt.float64))
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, 0.0], [12.0, -8.0]])
    z = leaf([1.0, 2.0])
    (z * 2).backward(np.array([1.0, 3.0]))  # a plain array works too
    np.testing.assert_array_equal(z.grad.numpy(), [2.0, 6.0])


def test_a_seed_gradient_of_another_float_dtype_takes_the_dtype_of_the_tensor():
    x = leaf([1.0, 2.0])
    (x * 2).backward(tt.tensor([1.0, 1.0], dtype=tt.float32))
    x32 = leaf([1.0], dtype=tt.float32)
    x32.backward(tt.tensor([3.0], dtype=tt.float64))
    assert x.grad.dtype == tt.float64 and x32.grad.dtype == tt.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_saved_arrays_are_released_after_backward_and_kept_with_retain_graph():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    retained = (tt.softmax(x.exp() * x, -1) @ x).sum()
    retained.backward(retain_graph=True)
    assert any(node.saved != () for node in _graph_nodes(retained))
    loss = (tt.layer_norm(x.exp() * x, 2) @ x.sqrt()).sum()
    nodes = _graph_nodes(loss)
    assert len(nodes) >= 5 and any(node.saved != () for node in nodes)
    loss.backward()
    assert all(node.saved == () for node in nodes)


def test_the_graph_keeps_no_intermediate_tensor_alive():
    x = leaf(np.ones(3))
    hidden = x * 2
    out = (hidden * 3).sum()
    hidden_ref = weakref.ref(hidden)
    del hidden
    gc.collect()
    assert hidden_ref() is None
    out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0, 6.0])


def test_only_needed_input_gradients_are_computed():
    seen = []

    class Spy(Function):
        def forward(self, a, b):
            return a * b

        def backward(self, grad):
            seen.append(self.needs_input_grad)
            return grad, grad

    a, b = leaf([1.0]), tt.tensor([2.0], dtype=tt.float64)
    Spy.apply(a, b).sum().backward()
    assert seen == [(True, False)] and b.grad is None


# ---- grad modes --------------------------------------------------------------------------------------------------
def test_no_grad_builds_no_graph_and_restores_the_mode_afterwards():
    x = leaf([1.0, 2.0])
    with tt.no_grad():
        assert not tt.is_grad_enabled()
        y = (x * 2).exp().sum()
    assert tt.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y._node is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_restores_the_mode_when_the_block_raises():
    with pytest.raises(ValueError), tt.no_grad():
        raise ValueError
    assert tt.is_grad_enabled()


def test_no_grad_works_as_a_decorator():
    @tt.no_grad()
    def double(t):
        return t * 2

    out = double(leaf([1.0]))
    assert not out.requires_grad and out._node is None
    assert tt.is_grad_enabled()


def test_enable_grad_inside_no_grad_records_again():
    x = leaf([1.0, 2.0])
    with tt.no_grad():
        with tt.enable_grad():
            assert tt.is_grad_enabled()
            y = (x * x).sum()
        assert not tt.is_grad_enabled()
        z = x * 3
    assert y.requires_grad and not z.requires_grad
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_detach_shares_the_data_but_cuts_the_graph():
    x = leaf([1.0, 2.0])
    y = x * 2
    detached = y.detach()
    assert not detached.requires_grad and detached.is_leaf
    assert np.shares_memory(detached.data, y.data)
    (detached * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])  # no path through y: only the direct use of x


def test_requires_grad_on_an_integer_tensor_raises_and_names_the_dtype():
    with pytest.raises(TypeError, match="only floating-point tensors can require grad, got dtype int64"):
        tt.tensor([1, 2]).requires_grad_()
    with pytest.raises(TypeError, match="bool"):
        tt.tensor([True], requires_grad=True)


def test_requires_grad_cannot_be_turned_off_on_a_non_leaf():
    y = leaf([1.0]) * 2
    with pytest.raises(RuntimeError, match=r"only be turned off on leaf tensors; use \.detach\(\)"):
        y.requires_grad = False


def test_ops_on_tensors_that_do_not_require_grad_record_nothing():
    out = tt.ones(2, dtype=tt.float64) * tt.ones(2, dtype=tt.float64)
    assert not out.requires_grad and out._node is None


# ---- retain_grad -------------------------------------------------------------------------------------------------
def test_retain_grad_keeps_the_gradient_of_a_non_leaf():
    x = leaf([1.0, 2.0])
    hidden = x * 3
    hidden.retain_grad()
    other = x * 4
    (hidden * hidden + other).sum().backward()
    np.testing.assert_array_equal(hidden.grad.numpy(), 2 * hidden.numpy())
    assert other.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), 18 * x.numpy() + 4)


def test_retain_grad_on_a_reused_non_leaf_gets_the_summed_gradient():
    x = leaf([1.0])
    hidden = x * 2
    hidden.retain_grad()
    (hidden * 3 + hidden.exp()).sum().backward()
    np.testing.assert_allclose(hidden.grad.numpy(), [3.0 + np.exp(2.0)], rtol=1e-15)


# ---- anomaly mode ------------------------------------------------------------------------------------------------
def test_anomaly_mode_names_the_op_whose_forward_first_produced_nan():
    x = leaf([1.0, -1.0])
    with tt.detect_anomaly(), np.errstate(invalid="ignore"):
        shifted = x * 2
        with pytest.raises(FloatingPointError, match="forward of Log produced NaN or Inf"):
            shifted.log()


def test_anomaly_mode_names_the_op_whose_backward_first_produced_inf():
    x = leaf([0.0, 4.0])
    with tt.detect_anomaly(), np.errstate(divide="ignore"):
        loss = (x.sqrt() * 3).sum()
        with pytest.raises(FloatingPointError, match="backward of Sqrt produced NaN or Inf"):
            loss.backward()


def test_without_anomaly_mode_nan_passes_silently_and_the_mode_is_restored():
    x = leaf([-1.0])
    with tt.detect_anomaly():
        pass
    with np.errstate(invalid="ignore"):
        assert np.isnan(x.log().numpy()).all()
    assert not autograd._anomaly_mode


# ---- the Tensor surface ------------------------------------------------------------------------------------------
@given(shapes(max_dims=3), st.sampled_from([tt.float32, tt.float64]))
def test_tensor_reports_its_shape_dtype_and_size(shape, dtype):
    t = tt.zeros(*shape, dtype=dtype)
    assert t.shape == t.size() == shape and t.ndim == t.dim() == len(shape)
    assert t.dtype == dtype and t.numel() == int(np.prod(shape)) and t.device == "cpu"
    if shape:
        assert len(t) == shape[0] and t.size(-1) == shape[-1]


def test_item_tolist_and_repr_show_the_values():
    x = leaf([[1.5, 2.0]])
    assert x.tolist() == [[1.5, 2.0]] and (x.sum()).item() == 3.5 and float(x[0, 0]) == 1.5
    assert "requires_grad=True" in repr(x) and "grad_fn=Mul" in repr(x * 2) and "float64" in repr(x)
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element, got shape \(1, 2\)"):
        x.item()


def test_leaf_gradients_never_share_memory_with_each_other_or_the_caller():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    y = tt.tensor([3.0, 4.0], requires_grad=True)
    upstream = tt.tensor([1.0, 1.0])
    (x + y).backward(upstream)
    x.grad.data *= 10  # an in-place edit of one gradient (as a user might do) must not leak anywhere else
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(upstream.numpy(), [1.0, 1.0])


# ---- PyTorch's grad-mode decorators and gradient hooks ---------------------------------------------------------------
def test_no_grad_works_as_a_bare_decorator_a_called_decorator_and_a_context():
    @tt.no_grad
    def bare():
        return tt.is_grad_enabled()

    @tt.no_grad()
    def called():
        return tt.is_grad_enabled()

    with tt.no_grad():
        inside = tt.is_grad_enabled()
    assert (bare(), called(), inside, tt.is_grad_enabled()) == (False, False, False, True)
    assert bare.__name__ == "bare"


def test_inference_mode_records_no_graph_and_inference_mode_false_records_again():
    x = tt.ones(2, requires_grad=True)

    @tt.inference_mode
    def bare():
        return x * 2

    with tt.inference_mode():
        assert not (x * 2).requires_grad
        with tt.inference_mode(False):
            assert (x * 2).requires_grad
    assert not bare().requires_grad and (x * 2).requires_grad


def test_a_hook_on_a_non_leaf_sees_and_can_replace_its_gradient():
    x = tt.tensor([1.0, 2.0], dtype=tt.float64, requires_grad=True)
    hidden = x * 3
    seen = []
    handle = hidden.register_hook(lambda grad: seen.append(grad.tolist()) or grad * 10)
    (hidden * hidden).sum().backward()
    assert seen == [[6.0, 12.0]] and x.grad.tolist() == [180.0, 360.0]
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert seen == [[6.0, 12.0]]


def test_a_hook_on_a_leaf_sees_the_total_gradient_once_before_it_is_accumulated():
    weight = tt.tensor([1.0, 2.0], dtype=tt.float64, requires_grad=True)
    seen = []
    weight.register_hook(lambda grad: seen.append(grad.tolist()))
    (weight * 2 + weight * weight).sum().backward()
    assert seen == [[4.0, 6.0]] and weight.grad.tolist() == [4.0, 6.0]
    weight.register_hook(lambda grad: grad.clamp(max=5.0))  # gradient clipping per tensor, a common use
    weight.grad = None
    (weight * weight * weight).sum().backward()
    assert weight.grad.tolist() == [3.0, 5.0]


def test_a_hook_on_a_tensor_that_does_not_require_grad_is_refused():
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that does not require grad"):
        tt.ones(2).register_hook(print)


def test_gradients_of_many_slices_of_one_tensor_add_up_where_they_land():
    """Slices send back only their part (SliceGrad) and accumulate in one buffer: overlapping slices, steps of a
    recurrence, a hooked leaf, a retained node gradient and the caller's own gradient array all stay right."""
    rng = np.random.default_rng(0)
    x = tt.tensor(rng.standard_normal((6, 3)), requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    h = x * 2.0
    h.retain_grad()
    state = tt.zeros(3, dtype=tt.float64)
    for t in range(6):                                   # a recurrence reading one row per step
        state = (state + h[t]).tanh()
    total = state.sum() + (h[0:4] * h[2:6]).sum() + h[1, 1:].sum() + h[::-2].sum()
    total.backward()
    reference = tt.tensor(x.numpy(), requires_grad=True)
    expected, = tt.autograd.grad(_slices_total(reference), reference)
    np.testing.assert_allclose(x.grad.numpy(), expected.numpy(), rtol=1e-12)
    np.testing.assert_allclose(seen[0], x.grad.numpy(), rtol=0)
    np.testing.assert_allclose(h.grad.numpy() * 2.0, x.grad.numpy(), rtol=1e-12)
    shifted = h.detach().requires_grad_() + 1.0              # a gradient passed on as it came (Add's backward) …
    shifted.retain_grad()
    (shifted.sum() + shifted[0].sum()).backward()           # … must not take the slice added in place
    assert shifted.grad.tolist() == [[2.0] * 3] + [[1.0] * 3] * 5
    piece = x[1:3]
    caller = np.ones((2, 3))
    piece.backward(caller)
    assert caller.tolist() == [[1.0] * 3] * 2
    assert tt.gradcheck(_slices_total, [tt.tensor(rng.standard_normal((6, 3)), requires_grad=True)])


def _slices_total(x):
    """The same function as above, written with full-size masks instead of slices of a product."""
    h = x * 2.0
    state = tt.zeros(3, dtype=tt.float64)
    for t in range(6):
        state = (state + h.index_select(0, tt.tensor([t]))[0]).tanh()
    rows = tt.arange(6)
    first, last = h.index_select(0, rows[0:4]), h.index_select(0, rows[2:6])
    return state.sum() + (first * last).sum() + h[1].index_select(0, tt.tensor([1, 2])).sum() + \
        h.index_select(0, tt.tensor([5, 3, 1])).sum()
