"""Matrix multiplication (tinytensor/ops/linalg.py): batched, broadcasting, and NumPy's 1-D rules."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, broadcastable_shapes, check_op, op_settings, tensor

import tinytensor as tt

sides = st.integers(1, 4)


@op_settings
@given(data=st.data())
def test_batched_matmul_with_broadcast_batch_axes_matches_numpy_and_finite_differences(device, data):
    a_batch, b_batch = data.draw(broadcastable_shapes(2, max_dims=2, max_side=3), label="batch")
    m, k, n = data.draw(sides, label="m"), data.draw(sides, label="k"), data.draw(sides, label="n")
    a = data.draw(arrays((*a_batch, m, k)), label="a")
    b = data.draw(arrays((*b_batch, k, n)), label="b")
    check_op(lambda a, b: a @ b, np.matmul, a, b, device=device)


@pytest.mark.parametrize("case", ["vector_matrix", "matrix_vector", "vector_vector", "vector_batch", "batch_vector"])
@op_settings
@given(data=st.data())
def test_matmul_with_one_dimensional_operands_follows_numpy(case, device, data):
    k, n, batch = data.draw(sides, label="k"), data.draw(sides, label="n"), data.draw(sides, label="batch")
    a_shape, b_shape = {"vector_matrix": ((k,), (k, n)), "matrix_vector": ((n, k), (k,)),
                        "vector_vector": ((k,), (k,)), "vector_batch": ((k,), (batch, k, n)),
                        "batch_vector": ((batch, n, k), (k,))}[case]
    a, b = data.draw(arrays(a_shape), label="a"), data.draw(arrays(b_shape), label="b")
    check_op(tt.matmul, np.matmul, a, b, device=device)


def test_matmul_with_an_ndarray_on_the_left_uses_rmatmul():
    weight = tensor(np.arange(6.0).reshape(3, 2), dtype=tt.float64, requires_grad=True)
    left = np.ones((1, 3))
    out = left @ weight
    assert isinstance(out, tt.Tensor)
    out.sum().backward()
    np.testing.assert_array_equal(out.numpy(), left @ weight.numpy())
    np.testing.assert_array_equal(weight.grad.numpy(), np.ones((3, 2)))


def test_matmul_gradient_of_only_one_operand_leaves_the_other_alone():
    a = tensor(np.ones((2, 3)), dtype=tt.float64, requires_grad=True)
    b = tensor(np.full((3, 4), 2.0), dtype=tt.float64)
    (a @ b).sum().backward()
    assert b.grad is None
    np.testing.assert_array_equal(a.grad.numpy(), np.full((2, 3), 8.0))


# ---- einsum -------------------------------------------------------------------------------------------------------
# equation: the letters of each operand (sizes are drawn per letter; "." stands for a drawn broadcast batch)
EINSUM_EQUATIONS = ["ij,jk->ik", "bij,bjk->bik", "ij->ji", "ij->", "i,i->", "i,j->ij", "ij,j->i", "ijk->kj",
                    "bhqd,bhkd->bhqk", "ij,jk", "ij,ij->ij", "...ij,...jk->...ik", "ij,jk,kl->il"]


@pytest.mark.parametrize("equation", EINSUM_EQUATIONS)
@op_settings
@given(data=st.data())
def test_einsum_matches_numpy_and_finite_differences(equation, device, data):
    inputs = equation.split("->")[0].split(",")
    sizes = {letter: data.draw(sides, label=letter) for letter in sorted(set("".join(inputs)) - {"."})}
    batch = data.draw(broadcastable_shapes(len(inputs), max_dims=2, max_side=3), label="batch")
    operands = [data.draw(arrays((*(batch[i] if "..." in s else ()), *(sizes[c] for c in s.replace("...", "")))),
                          label=f"operand {i}") for i, s in enumerate(inputs)]
    check_op(lambda *xs: tt.einsum(equation, *xs), lambda *xs: np.einsum(equation, *xs), *operands, device=device)


def test_einsum_takes_a_list_of_operands_and_promotes_float32_to_float64():
    a, b = tt.ones(2, 3), tt.ones(3, 4, dtype=tt.float64)
    out = tt.einsum("ij,jk->ik", [a, b])
    assert out.dtype == tt.float64 and out.shape == (2, 4)


@pytest.mark.parametrize("equation, shapes", [
    ("ii->", [(3, 3)]), ("ii", [(3, 3)]), ("ii->i", [(3, 3)]), ("iij->j", [(2, 2, 4)]), ("iii->i", [(2, 2, 2)]),
    ("ij,jj->i", [(2, 3), (3, 3)]), ("...ii->...i", [(2, 3, 3)]), ("jii,ki->jk", [(2, 3, 3), (4, 3)]),
])
def test_einsum_diagonals_and_traces_have_first_and_second_derivatives(equation, shapes):
    rng = np.random.default_rng(0)
    operands = [tt.tensor(rng.standard_normal(shape), requires_grad=True) for shape in shapes]
    np.testing.assert_allclose(tt.einsum(equation, *operands).numpy(),
                               np.einsum(equation, *(o.numpy() for o in operands)), rtol=1e-12)
    assert tt.gradcheck(lambda *xs: tt.einsum(equation, *xs), operands)
    assert tt.gradgradcheck(lambda *xs: tt.einsum(equation, *xs), operands)


def test_the_gradient_of_a_trace_is_the_identity():
    x = tt.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    tt.einsum("ii->", x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.eye(3))
