"""Shape and indexing ops (tinytensor/ops/shape.py): forward against NumPy, backward against finite differences.

The shape arguments are drawn too: reshape targets with -1, axes (negative half of the time), split sizes, pads,
and indices that mix slices, ints, None, Ellipsis, integer arrays (with repeats) and boolean masks.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (
    arrays,
    axis,
    bool_masks,
    check_forward,
    check_op,
    index_arrays,
    op_settings,
    scaled_examples,
    shapes,
    tensor,
)

import tinytensor as tt


# ---- reshape family ----------------------------------------------------------------------------------------------
@st.composite
def reshape_targets(draw, shape):
    """A shape with as many elements as `shape`: its sides permuted, maybe two merged, a 1 inserted, one -1."""
    sides = list(draw(st.permutations(shape)))
    if len(sides) >= 2 and draw(st.booleans()):
        i = draw(st.integers(0, len(sides) - 2))
        sides[i:i + 2] = [sides[i] * sides[i + 1]]
    if draw(st.booleans()):
        sides.insert(draw(st.integers(0, len(sides))), 1)
    resolved = tuple(sides)
    if sides and draw(st.booleans()):
        sides[draw(st.integers(0, len(sides) - 1))] = -1
    return tuple(sides), resolved


@op_settings
@given(data=st.data())
def test_reshape_and_view_match_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(max_dims=3), label="shape")
    target, resolved = data.draw(reshape_targets(shape), label="target")
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.reshape(*target), lambda x: x.reshape(resolved), x, device=device)
    check_op(lambda x: x.view(target), lambda x: x.reshape(resolved), x, device=device)


@op_settings
@given(data=st.data())
def test_flatten_matches_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=4, max_side=3), label="shape")
    start = data.draw(st.integers(0, len(shape) - 1), label="start")
    end = data.draw(st.integers(start, len(shape) - 1), label="end")
    start_arg = data.draw(st.sampled_from([start, start - len(shape)]), label="start_arg")
    end_arg = data.draw(st.sampled_from([end, end - len(shape)]), label="end_arg")
    flat = (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:])
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.flatten(start_arg, end_arg), lambda x: x.reshape(flat), x, device=device)


@op_settings
@given(data=st.data())
def test_transpose_matches_numpy_swapaxes_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=2, max_dims=4, max_side=3), label="shape")
    dim0, dim1 = data.draw(axis(len(shape)), label="dim0"), data.draw(axis(len(shape)), label="dim1")
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.transpose(dim0, dim1), lambda x: np.swapaxes(x, dim0, dim1), x, device=device)
    check_op(lambda x: x.mT, lambda x: np.swapaxes(x, -1, -2), x, device=device)


@op_settings
@given(data=st.data())
def test_permute_matches_numpy_transpose_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=0, max_dims=4, max_side=3), label="shape")
    dims = data.draw(st.permutations(range(len(shape))), label="dims")
    dims = [d - len(shape) if data.draw(st.booleans()) else d for d in dims]
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.permute(*dims), lambda x: np.transpose(x, dims), x, device=device)
    check_op(lambda x: x.T, lambda x: x.T, x, device=device)


@op_settings
@given(data=st.data())
def test_unsqueeze_matches_numpy_expand_dims_and_finite_differences(device, data):
    shape = data.draw(shapes(max_dims=3), label="shape")
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)), label="dim")
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.unsqueeze(dim), lambda x: np.expand_dims(x, dim), x, device=device)


@op_settings
@given(data=st.data())
def test_squeeze_drops_size_one_axes_like_pytorch(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=4, max_side=2), label="shape")
    dim = data.draw(st.none() | axis(len(shape)), label="dim")
    x = data.draw(arrays(shape), label="x")

    def reference(x):
        if dim is None:
            return np.squeeze(x)
        return np.squeeze(x, dim) if shape[dim] == 1 else x  # PyTorch leaves a longer axis alone

    check_op(lambda x: x.squeeze(dim), reference, x, device=device)


@st.composite
def expand_targets(draw, shape):
    """An expand() argument for `shape`: maybe a new leading axis, -1 to keep a side, size-1 sides grown."""
    target = [draw(st.sampled_from([-1, n] + ([2, 3] if n == 1 else []))) for n in shape]
    lead = draw(st.lists(st.integers(1, 3), max_size=1))
    resolved = tuple(lead) + tuple(n if t == -1 else t for n, t in zip(shape, target))
    return tuple(lead + target), resolved


@op_settings
@given(data=st.data())
def test_expand_matches_numpy_broadcast_to_and_sums_the_gradient_back(device, data):
    shape = data.draw(shapes(max_dims=3, max_side=3), label="shape")
    target, resolved = data.draw(expand_targets(shape), label="target")
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.expand(*target), lambda x: np.broadcast_to(x, resolved), x, device=device)


# ---- joining and splitting ---------------------------------------------------------------------------------------
@op_settings
@given(data=st.data())
def test_cat_matches_numpy_concatenate_and_splits_the_gradient(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    lengths = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3), label="lengths")
    pieces = [data.draw(arrays(shape[:dim % len(shape)] + (n,) + shape[dim % len(shape) + 1:]), label="piece")
              for n in lengths]
    check_op(lambda *xs: tt.cat(xs, dim), lambda *xs: np.concatenate(xs, axis=dim), *pieces, device=device)


@op_settings
@given(data=st.data())
def test_stack_matches_numpy_stack_and_finite_differences(device, data):
    shape = data.draw(shapes(max_dims=3, max_side=3), label="shape")
    dim = data.draw(st.integers(-len(shape) - 1, len(shape)), label="dim")
    count = data.draw(st.integers(1, 3), label="count")
    pieces = [data.draw(arrays(shape), label="piece") for _ in range(count)]
    check_op(lambda *xs: tt.stack(list(xs), dim=dim), lambda *xs: np.stack(xs, axis=dim), *pieces, device=device)


@op_settings
@given(data=st.data())
def test_split_by_size_or_by_sections_matches_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    length = shape[dim]
    if data.draw(st.booleans(), label="by_size"):
        split_size = data.draw(st.integers(1, length), label="split_size")
        boundaries = list(range(split_size, length, split_size))
    else:
        cuts = sorted(data.draw(st.lists(st.integers(0, length), max_size=3), label="cuts"))
        split_size = [b - a for a, b in zip([0, *cuts], [*cuts, length])]
        boundaries = cuts
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.split(split_size, dim), lambda x: np.split(x, boundaries, axis=dim), x, device=device)


@op_settings
@given(data=st.data())
def test_chunk_gives_pytorch_sized_pieces_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    chunks = data.draw(st.integers(1, 5), label="chunks")
    size = math.ceil(shape[dim] / chunks)
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.chunk(chunks, dim), lambda x: np.split(x, list(range(size, shape[dim], size)), axis=dim),
             x, device=device)


@pytest.mark.parametrize("length, chunks, sizes", [(5, 3, [2, 2, 1]), (6, 4, [2, 2, 2]), (3, 2, [2, 1]),
                                                   (4, 4, [1, 1, 1, 1]), (2, 5, [1, 1]), (7, 1, [7])])
def test_chunk_sizes_follow_pytorch(length, chunks, sizes):
    assert [piece.shape[0] for piece in tt.zeros(length).chunk(chunks)] == sizes


@op_settings
@given(data=st.data())
def test_pad_matches_numpy_constant_pad_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
    padded_axes = data.draw(st.integers(1, len(shape)), label="padded_axes")
    widths = data.draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=padded_axes,
                                max_size=padded_axes), label="widths")
    value = data.draw(st.sampled_from([0.0, -1.5]), label="value")
    torch_pad = tuple(w for pair in widths for w in pair)  # last axis first, as in PyTorch
    numpy_widths = [(0, 0)] * (len(shape) - padded_axes) + widths[::-1]
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: tt.pad(x, torch_pad, value=value),
             lambda x: np.pad(x, numpy_widths, mode="constant", constant_values=value), x, device=device)


@op_settings
@given(data=st.data())
def test_tril_and_triu_match_numpy_and_mask_the_gradient(device, data):
    shape = data.draw(shapes(min_dims=2, max_dims=3), label="shape")
    diagonal = data.draw(st.integers(-2, 2), label="diagonal")
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.tril(diagonal), lambda x: np.tril(x, diagonal), x, device=device)
    check_op(lambda x: tt.triu(x, diagonal), lambda x: np.triu(x, diagonal), x, device=device)


# ---- indexing ----------------------------------------------------------------------------------------------------
@st.composite
def indices(draw, shape):
    """An index for `shape`: basic (slices, ints, None, ...), integer arrays, a boolean mask, or a mix."""
    kind = draw(st.sampled_from(["basic", "integer_arrays", "mask", "slice_then_array", "int_list"]))
    if kind == "basic":
        return draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    if kind == "integer_arrays":  # negative ids and repeats included
        return draw(hnp.integer_array_indices(shape, result_shape=shapes(min_dims=1, max_dims=2)))
    if kind == "mask":
        leading = draw(st.integers(1, len(shape)))
        return draw(bool_masks(shape[:leading]))
    if kind == "slice_then_array":
        ids = draw(index_arrays(draw(shapes(min_dims=1, max_dims=2)), shape[-1]))
        return (Ellipsis, ids) if draw(st.booleans()) else (*[slice(None, None, -1)] * (len(shape) - 1), ids)
    return draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=5))


@scaled_examples(2)
@given(data=st.data())
def test_getitem_matches_numpy_indexing_and_accumulates_gradient_at_repeated_indices(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    index = data.draw(indices(shape), label="index")
    x = data.draw(arrays(shape), label="x")
    parts = index if isinstance(index, tuple) else (index,)  # index arrays must live where x lives
    on_device = tuple(tensor(p, device) if isinstance(p, np.ndarray) else p for p in parts)
    on_device = on_device if isinstance(index, tuple) else on_device[0]
    check_op(lambda x: x[on_device], lambda x: x[index], x, device=device)


def test_getitem_with_repeated_integer_ids_adds_their_gradients():
    x = tensor(np.arange(4.0), dtype=tt.float64, requires_grad=True)
    x[tt.tensor([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0, 0.0])


def test_getitem_accepts_integer_and_boolean_tensors_as_indices(device):
    values = np.arange(12.0).reshape(3, 4)
    x = tensor(values, device)
    rows, mask = tensor(np.array([2, 0, 2]), device), tensor(values[:, 0] > 3, device)
    np.testing.assert_array_equal(x[rows].numpy(), values[[2, 0, 2]])
    np.testing.assert_array_equal(x[mask, 1:].numpy(), values[values[:, 0] > 3, 1:])
    np.testing.assert_array_equal(x[:, rows].numpy(), values[:, [2, 0, 2]])


@op_settings
@given(data=st.data())
def test_gather_matches_numpy_take_along_axis_and_accumulates_repeats(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    index_shape = list(shape)
    index_shape[dim] = data.draw(st.integers(1, 4), label="picks")
    ids = data.draw(index_arrays(tuple(index_shape), shape[dim]), label="ids")
    index = tensor(ids, device)
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.gather(dim, index), lambda x: np.take_along_axis(x, ids, axis=dim), x, device=device)


def test_setitem_writes_into_a_tensor_outside_the_graph_and_refuses_one_that_requires_grad():
    x = tt.zeros(2, 3)
    x[0, tt.tensor([1, 2])] = 5.0
    np.testing.assert_array_equal(x.numpy(), [[0, 5, 5], [0, 0, 0]])
    leaf = tt.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place assignment"):
        leaf[0] = 1.0
    with tt.no_grad():
        leaf[0] = 1.0
    np.testing.assert_array_equal(leaf.numpy(), [1.0, 0.0])


def test_shape_helpers_accept_tuples_and_varargs_alike():
    x = tensor(np.arange(6.0).reshape(2, 3))
    assert x.reshape((3, 2)).shape == x.reshape(3, 2).shape == (3, 2)
    assert x.permute((1, 0)).shape == x.permute(1, 0).shape == (3, 2)
    assert x.expand((4, 2, 3)).shape == x.expand(4, -1, -1).shape == (4, 2, 3)
    check_forward(lambda t: t.flatten(), lambda v: v.reshape(-1), np.arange(6.0).reshape(2, 3))


# ---- view, contiguous, roll, repeat -------------------------------------------------------------------------------
def test_view_of_a_transposed_tensor_raises_as_pytorch_and_contiguous_makes_it_viewable():
    x = tensor(np.arange(24.0).reshape(2, 3, 4), dtype=tt.float64, requires_grad=True)
    swapped = x.transpose(0, 1)
    assert not swapped.is_contiguous()
    with pytest.raises(RuntimeError, match=r"view: .* use .reshape\(...\) or .contiguous\(\).view\(...\)"):
        swapped.view(6, 4)
    merged = swapped.contiguous().view(6, 4)
    np.testing.assert_array_equal(merged.numpy(), np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2).reshape(6, 4))
    np.testing.assert_array_equal(swapped.reshape(6, 4).numpy(), merged.numpy())
    assert x.contiguous() is x
    assert tt.gradcheck(lambda x: x.transpose(0, 1).contiguous().view(6, 4), [x])


def test_view_of_a_non_contiguous_tensor_succeeds_where_the_strides_allow_it():
    x = tensor(np.arange(24.0).reshape(4, 6))[:, :4]  # rows are strided, but each row can still be split
    np.testing.assert_array_equal(x.view(4, 2, 2).numpy(), np.arange(24.0).reshape(4, 6)[:, :4].reshape(4, 2, 2))


@op_settings
@given(data=st.data())
def test_roll_matches_numpy_and_finite_differences(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    if data.draw(st.booleans(), label="flat"):
        shifts, dims = data.draw(st.integers(-5, 5), label="shifts"), None
    else:
        dims = tuple(data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                                        unique=True), label="dims"))
        shifts = tuple(data.draw(st.lists(st.integers(-5, 5), min_size=len(dims), max_size=len(dims)),
                                 label="shifts"))
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: tt.roll(x, shifts, dims), lambda x: np.roll(x, shifts, axis=dims), x, device=device)


@op_settings
@given(data=st.data())
def test_repeat_matches_numpy_tile_and_finite_differences(device, data):
    shape = data.draw(shapes(max_dims=3, max_side=3), label="shape")
    extra = data.draw(st.integers(0, 2), label="extra dims")
    sizes = tuple(data.draw(st.lists(st.integers(1, 3), min_size=len(shape) + extra,
                                     max_size=len(shape) + extra), label="sizes"))
    x = data.draw(arrays(shape), label="x")
    check_op(lambda x: x.repeat(*sizes), lambda x: np.tile(x, sizes), x, device=device)


def test_repeat_with_fewer_counts_than_dimensions_says_so():
    with pytest.raises(ValueError, match="repeat: 1 repeat counts for a tensor of 2 dimensions"):
        tt.ones(2, 3).repeat(2)
