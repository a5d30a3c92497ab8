"""Ordering (tinytensor/ops/sort.py): sort, argsort and topk against NumPy, values' gradients against finite
differences, and PyTorch's (values, indices) results."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import axis, check_op, distinct_arrays, op_settings, shapes, tensor

import tinytensor as tt


@pytest.mark.parametrize("descending", [False, True])
@op_settings
@given(data=st.data())
def test_sort_matches_numpy_and_its_values_match_finite_differences(descending, device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    x = data.draw(distinct_arrays(shape), label="x")
    order = np.argsort(-x if descending else x, axis=dim)
    values, indices = tt.sort(tensor(x, device), dim, descending=descending)
    np.testing.assert_array_equal(indices.numpy(), order)
    np.testing.assert_array_equal(tensor(x, device).argsort(dim, descending).numpy(), order)
    check_op(lambda x: x.sort(dim, descending).values, lambda x: np.take_along_axis(x, order, axis=dim), x,
             device=device)


@pytest.mark.parametrize("largest", [True, False])
@op_settings
@given(data=st.data())
def test_topk_picks_the_k_best_in_order_and_its_values_match_finite_differences(largest, device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    k = data.draw(st.integers(0, shape[dim]), label="k")
    x = data.draw(distinct_arrays(shape), label="x")
    best = np.take(np.argsort(-x if largest else x, axis=dim), np.arange(k), axis=dim)
    result = tt.topk(tensor(x, device), k, dim, largest=largest)
    np.testing.assert_array_equal(result.indices.numpy(), best)
    check_op(lambda x: x.topk(k, dim, largest).values, lambda x: np.take_along_axis(x, best, axis=dim), x,
             device=device)


def test_sort_is_stable_and_descending_keeps_ties_in_order():
    x = tt.tensor([2, 1, 2, 1, 3])
    assert x.sort().indices.tolist() == [1, 3, 0, 2, 4]
    assert x.sort(descending=True).indices.tolist() == [4, 0, 2, 1, 3]
    assert tt.tensor([False, True, False]).argsort(descending=True).tolist() == [1, 0, 2]


def test_topk_with_k_larger_than_the_dimension_says_so():
    with pytest.raises(IndexError, match="topk: k=4 is out of range for dimension -1 of size 3"):
        tt.topk(tt.ones(3), 4)
