"""Indexing along one axis with PyTorch's rules (tinytensor/ops/scatter.py, and gather in ops/shape.py):
forward against NumPy, backward against finite differences.

The references are loops over every index position written from PyTorch's definitions (for dim 0:
out[i][j][k] = x[index[i][j][k]][j][k] for gather, out[index[i][j][k]][j][k] = src[i][j][k] for scatter), so they
do not share the implementation's fancy indexing. Index shapes are drawn smaller than the input on the other axes
and smaller than src, as PyTorch allows; scatter's ids are distinct along `dim` (which of two writes to one place
wins is unspecified, in PyTorch too), scatter_add's repeat.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, axis, check_forward, check_op, index_arrays, op_settings, shapes, tensor

import tinytensor as tt


def _gather_reference(x, dim, ids):
    out = np.zeros(ids.shape)
    for position in np.ndindex(ids.shape):
        source = list(position)
        source[dim] = ids[position]
        out[position] = x[tuple(source)]
    return out


def _scatter_reference(x, dim, ids, src, accumulate):
    out = x.copy()
    for position in np.ndindex(ids.shape):
        target = list(position)
        target[dim] = ids[position]
        out[tuple(target)] = out[tuple(target)] + src[position] if accumulate else src[position]
    return out


@st.composite
def along_axis_case(draw, distinct: bool = False):
    """(input shape, dim, index ids, src shape): index no larger than the input off `dim`, src no smaller."""
    shape = draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = draw(axis(len(shape)), label="dim")
    axis_size = shape[dim]
    index_shape = [draw(st.integers(1, n)) for n in shape]
    index_shape[dim] = draw(st.integers(1, axis_size if distinct else 4))
    if distinct:  # a random permutation's leading part along dim, for every position off dim
        order = np.argsort(draw(arrays(tuple(n if i != dim else axis_size for i, n in enumerate(index_shape)))),
                           axis=dim, kind="stable")
        ids = np.take(order, range(index_shape[dim]), axis=dim)
    else:
        ids = draw(index_arrays(tuple(index_shape), axis_size))
    src_shape = tuple(n + draw(st.integers(0, 1)) for n in index_shape)
    return tuple(shape), dim, ids, src_shape


@op_settings
@given(data=st.data())
def test_gather_with_an_index_smaller_than_the_input_reads_its_leading_part_as_pytorch(device, data):
    shape, dim, ids, _ = data.draw(along_axis_case(), label="case")
    x = data.draw(arrays(shape), label="x")
    index = tensor(ids, device)
    check_op(lambda x: x.gather(dim, index), lambda x: _gather_reference(x, dim % x.ndim, ids), x, device=device)
    check_op(lambda x: tt.gather(x, dim, index), lambda x: _gather_reference(x, dim % x.ndim, ids), x, device=device)


@op_settings
@given(data=st.data())
def test_index_select_matches_numpy_take_and_adds_the_gradient_of_repeated_ids(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    ids = data.draw(index_arrays((data.draw(st.integers(1, 5), label="picks"),), shape[dim]), label="ids")
    index = tensor(ids, device)
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.index_select(dim, index), lambda x: np.take(x, ids, axis=dim), x, device=device)
    check_op(lambda x: tt.index_select(x, dim, index), lambda x: np.take(x, ids, axis=dim), x, device=device)


@op_settings
@given(data=st.data())
def test_scatter_matches_pytorchs_definition_and_finite_differences_for_input_and_src(device, data):
    shape, dim, ids, src_shape = data.draw(along_axis_case(distinct=True), label="case")
    x, src = data.draw(arrays(shape), label="x"), data.draw(arrays(src_shape), label="src")
    index = tensor(ids, device)
    reference = lambda x, src: _scatter_reference(x, dim % x.ndim, ids, src, accumulate=False)  # noqa: E731
    check_op(lambda x, src: x.scatter(dim, index, src), reference, x, src, device=device)
    check_op(lambda x, src: tt.scatter(x, dim, index, src), reference, x, src, device=device)


@op_settings
@given(data=st.data())
def test_scatter_add_accumulates_repeated_ids_and_matches_finite_differences(device, data):
    shape, dim, ids, src_shape = data.draw(along_axis_case(), label="case")
    x, src = data.draw(arrays(shape), label="x"), data.draw(arrays(src_shape), label="src")
    index = tensor(ids, device)
    reference = lambda x, src: _scatter_reference(x, dim % x.ndim, ids, src, accumulate=True)  # noqa: E731
    check_op(lambda x, src: x.scatter_add(dim, index, src), reference, x, src, device=device)
    check_op(lambda x, src: tt.scatter_add(x, dim, index, src), reference, x, src, device=device)


@op_settings
@given(data=st.data())
def test_scatter_of_a_number_writes_it_at_every_index_position(device, data):
    shape, dim, ids, _ = data.draw(along_axis_case(), label="case")
    x = data.draw(arrays(shape), label="x")
    index = tensor(ids, device)
    filled = np.full(ids.shape, -3.5)
    reference = lambda x: _scatter_reference(x, dim % x.ndim, ids, filled, accumulate=False)  # noqa: E731
    check_op(lambda x: x.scatter(dim, index, -3.5), reference, x, device=device)
    check_forward(lambda x: x.scatter(dim, index, value=-3.5), reference, x, device=device)


def test_scatter_reproduces_pytorchs_documented_example():
    src = tt.arange(1, 11).reshape(2, 5).float()
    out = tt.zeros(3, 5).scatter_(0, tt.tensor([[0, 1, 2, 0]]), src)
    np.testing.assert_array_equal(out.numpy(), [[1, 0, 0, 4, 0], [0, 2, 0, 0, 0], [0, 0, 3, 0, 0]])
    out = tt.zeros(3, 5).scatter_add(0, tt.tensor([[0, 1, 2, 0, 0], [2, 0, 0, 1, 2]]), tt.ones(2, 5))
    np.testing.assert_array_equal(out.numpy(), [[1, 1, 1, 1, 1], [0, 1, 0, 1, 0], [1, 0, 1, 0, 1]])


def test_in_place_scatter_on_a_graph_tensor_is_differentiable_and_refused_on_a_parameter():
    weight = tt.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    index, src = tt.tensor([[2, 0]]), tt.tensor([[10.0, 20.0]], requires_grad=True)
    hidden = weight * 2
    hidden.scatter_(1, index, src).scatter_add_(1, tt.tensor([[1, 1]]), src)
    (hidden * tt.tensor([[1.0, 2.0, 3.0]])).sum().backward()
    np.testing.assert_array_equal(hidden.detach().numpy(), [[20.0, 34.0, 10.0]])
    np.testing.assert_array_equal(weight.grad.numpy(), [[0.0, 4.0, 0.0]])      # overwritten places get nothing
    np.testing.assert_array_equal(src.grad.numpy(), [[3.0 + 2.0, 1.0 + 2.0]])
    with pytest.raises(RuntimeError, match="scatter_: a leaf tensor that requires grad"):
        weight.scatter_(1, index, src)


def test_one_hot_by_scatter_as_pytorch_programs_write_it():
    labels = tt.tensor([2, 0, 1])
    one_hot = tt.zeros(3, 4).scatter_(1, labels.unsqueeze(1), 1.0)
    np.testing.assert_array_equal(one_hot.numpy(), np.eye(4)[[2, 0, 1]])


ERRORS = [
    (lambda x: x.gather(1, tt.tensor([[0, -1]])), IndexError, r"gather: index -1 is out of range for dimension 1"),
    (lambda x: x.gather(0, tt.tensor([[2]])), IndexError, r"gather: index 2 is out of range for dimension 0 with size"),
    (lambda x: x.gather(0, tt.zeros(2, 4, dtype=tt.int64)), ValueError, r"larger than the input shape \(2, 3\) on dim"),
    (lambda x: x.gather(0, tt.tensor([[0.0]])), TypeError, r"gather: index must hold integers"),
    (lambda x: x.index_select(1, tt.tensor([3])), IndexError, r"index_select: index 3 is out of range"),
    (lambda x: x.index_select(0, tt.tensor([[0]])), ValueError, r"index_select: index must be 0-d or 1-d"),
    (lambda x: x.scatter(0, tt.tensor([[0, 1]]), tt.ones(1, 1)), ValueError, r"must fit inside the src shape \(1, 1\)"),
    (lambda x: x.scatter(0, tt.tensor([[0]]), tt.ones(1, 1, dtype=tt.float64)), TypeError, r"src has dtype float64"),
    (lambda x: x.scatter(0, tt.tensor([[0]]), 1.0, reduce="add"), NotImplementedError, r"reduce= is not supported"),
    (lambda x: x.scatter_add(1, tt.tensor([[5]]), x), IndexError, r"scatter_add: index 5 is out of range"),
]


@pytest.mark.parametrize("call, error, message", ERRORS)
def test_bad_indices_raise_errors_that_name_the_op_and_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call(tt.zeros(2, 3))


def test_index_select_of_a_0d_index_keeps_the_axis_as_pytorch():
    x = tt.arange(6).reshape(2, 3)
    assert x.index_select(1, tt.tensor(2)).tolist() == [[2], [5]]


def test_expand_as_view_as_and_reshape_as_take_the_other_tensors_shape():
    x = tt.arange(6.0).reshape(2, 3)
    assert x.view_as(tt.zeros(3, 2)).shape == (3, 2) and x.reshape_as(tt.zeros(6)).shape == (6,)
    assert x[:1].expand_as(tt.zeros(4, 2, 3)).shape == (4, 2, 3)
    with pytest.raises(RuntimeError, match="view"):
        x.T.view_as(tt.zeros(6))
    leaf = tt.tensor([[1.0], [2.0]], requires_grad=True)
    leaf.expand_as(x).sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), [[3.0], [3.0]])
