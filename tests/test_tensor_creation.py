"""`tt.tensor` takes what torch.tensor takes and names the type of anything else.

Issue 14: `tt.tensor(range(5))`, `tt.tensor("abc")`, `tt.tensor(None)`, a generator or a Decimal all said
"device 'cuda' needs CuPy".
"""
from __future__ import annotations

import decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytensor as tt


@pytest.mark.parametrize("data, expected, dtype", [
    (range(5), [0, 1, 2, 3, 4], tt.int64),
    ([range(2), range(2)], [[0, 1], [0, 1]], tt.int64),
    ((1.5, 2.5), [1.5, 2.5], tt.float32),
    (3, 3, tt.int64),
    (True, True, np.bool_),
    (np.float64(2.5), 2.5, tt.float64),
    (np.int32(7), 7, np.int32),
    (tt.tensor(4.0), 4.0, tt.float32),
    ([tt.tensor(1.0), tt.tensor(2.0)], [1.0, 2.0], tt.float32),
    ([[tt.tensor(1), 2], [3, np.int64(4)]], [[1, 2], [3, 4]], tt.int64),
])
def test_tensor_accepts_what_torch_tensor_accepts(data, expected, dtype):
    made = tt.tensor(data)
    assert made.tolist() == expected and made.dtype == dtype and made.device == "cpu"


@pytest.mark.parametrize("data, named", [
    ("abc", "str"), (None, "NoneType"), ((n for n in range(3)), "generator"), (decimal.Decimal(1), "Decimal"),
    ({"a": 1}, "dict"), (b"ab", "bytes"), ([1, "a"], "a list holding str"), ([[1, 2], [3, None]],
                                                                              "a list holding a list holding NoneType"),
    (object(), "object"), (np.array(["a"]), "an array of dtype <U1"),
])
def test_tensor_names_the_type_it_cannot_take(data, named):
    with pytest.raises(TypeError, match=f"^tensor\\(\\): expected .*; got {named}$|got {named}"):
        tt.tensor(data)


SHAPES = hnp.array_shapes(min_dims=0, max_dims=3)


@given(st.one_of(hnp.arrays(np.int64, SHAPES), hnp.arrays(np.bool_, SHAPES),
                 hnp.arrays(np.float64, SHAPES, elements=st.floats(-1e3, 1e3, width=32))),
       st.sampled_from([list, tuple]))
def test_nested_sequences_give_the_same_values_and_shape_as_numpy(array, sequence):
    nested = array.tolist() if array.ndim == 0 or sequence is list else _as_tuples(array.tolist())
    expected = array.astype(np.float32) if array.dtype == np.float64 else array  # Python floats → float32
    made = tt.tensor(nested)
    np.testing.assert_array_equal(made.numpy(), expected)
    assert made.dtype == expected.dtype


def _as_tuples(nested):
    return tuple(_as_tuples(item) for item in nested) if isinstance(nested, list) else nested


def test_tensor_copies_its_data_as_torch_tensor_does_and_from_numpy_shares():
    array = np.zeros(3, dtype=np.float32)
    copied, shared = tt.tensor(array), tt.from_numpy(array)
    copied.add_(1.0)
    assert array.tolist() == [0.0, 0.0, 0.0]
    shared.add_(2.0)
    assert array.tolist() == [2.0, 2.0, 2.0] and copied.tolist() == [1.0, 1.0, 1.0]
    source = tt.tensor([1.0, 2.0])
    clone = tt.tensor(source)
    clone.mul_(3.0)
    assert source.tolist() == [1.0, 2.0]
