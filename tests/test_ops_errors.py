"""Error messages a user can act on: the op, both shapes, both devices, the bad id and the valid range."""
import re

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.nn.functional as F
from tinytensor import backend


def _shapes_named(op: str, first: tuple, second: tuple) -> str:
    return rf"{op}.*{re.escape(str(first))}.*{re.escape(str(second))}"


# name: (op on tensors shaped (2, 3) and (4,), the op name the message must carry)
MISMATCHED_BINARY = {
    "add": (lambda a, b: a + b, "add"), "sub": (lambda a, b: a - b, "sub"), "mul": (lambda a, b: a * b, "mul"),
    "div": (lambda a, b: a / b, "div"), "pow": (lambda a, b: a**b, "pow"),
    "maximum": (tt.maximum, "maximum"), "minimum": (tt.minimum, "minimum"),
    "where": (lambda a, b: tt.where(a > 0, a, b), "where"),
    "matmul": (lambda a, b: a @ b, "matmul"), "cat": (lambda a, b: tt.cat([a, b]), "cat"),
    "stack": (lambda a, b: tt.stack([a, b]), "stack"), "mse_loss": (F.mse_loss, "mse_loss"),
}


@pytest.mark.parametrize("name", MISMATCHED_BINARY)
def test_shape_mismatch_names_the_op_and_both_shapes(name):
    op, op_name = MISMATCHED_BINARY[name]
    with pytest.raises(ValueError, match=_shapes_named(op_name, (2, 3), (4,))):
        op(tt.zeros(2, 3), tt.zeros(4))


def test_masked_fill_with_a_mask_of_the_wrong_shape_names_the_op_and_both_shapes():
    with pytest.raises(ValueError, match=_shapes_named("masked_fill", (5,), (2, 3))):
        tt.zeros(2, 3).masked_fill(tt.tensor(np.ones(5, dtype=bool)), 0.0)


@pytest.mark.parametrize("op, pattern", [
    (lambda x: x.reshape(4, 2), _shapes_named("reshape", (2, 3), (4, 2))),
    (lambda x: x.expand(4, 3), _shapes_named("expand", (2, 3), (4, 3))),
    (lambda x: x.permute(0, 0), r"permute: \(0, 0\) is not a permutation.*\(2, 3\)"),
    (lambda x: x.split([1, 2]), r"split: sizes \[1, 2\] do not add up to 2, the length of axis 0"),
    (lambda x: tt.pad(x, (1,)), r"pad: \(1,\).*\(2, 3\)"),
    (lambda x: x.gather(0, tt.tensor([0])), r"gather: index has 1 dims but the input shape \(2, 3\) has 2"),
    (lambda x: F.layer_norm(x, 4), r"layer_norm: normalized_shape \(4,\).*got input \(2, 3\)"),
    (lambda x: F.rms_norm(x, 3, tt.ones(4)), r"rms_norm: normalized_shape \(3,\).*input \(2, 3\) and weight \(4,\)"),
    (lambda x: F.scaled_dot_product_attention(x[None], tt.zeros(1, 2, 4), tt.zeros(1, 2, 4)),
     r"scaled_dot_product_attention: query \(1, 2, 3\), key \(1, 2, 4\)"),
    (lambda x: F.cross_entropy(x, tt.tensor([0, 1, 2])), r"cross_entropy: input \(2, 3\) and target \(3,\)"),
    (lambda x: F.gelu(x, approximate="fast"), r"gelu: approximate must be 'none' or 'tanh', got 'fast'"),
    (lambda x: F.dropout(x, 1.0), r"dropout probability must be in \[0, 1\), got 1.0"),
])
def test_bad_shape_arguments_name_the_op_and_what_was_given(op, pattern):
    with pytest.raises((ValueError, IndexError), match=pattern):
        op(tt.zeros(2, 3))


# ---- devices -----------------------------------------------------------------------------------------------------
class _FakeDeviceArray:
    """An array-like that is not NumPy: `backend.device_of` places it on 'cuda'."""

    dtype, shape, ndim = np.dtype("float32"), (2,), 1


class _MarkedAsCuda(np.ndarray):
    """A host array that the patched `device_of` reports as a GPU array."""


def test_array_module_refuses_arrays_on_two_devices_and_names_both():
    with pytest.raises(RuntimeError, match=r"matmul: inputs are on different devices, cpu and cuda.*\.to\(\)"):
        backend.array_module(np.zeros(2), _FakeDeviceArray(), op="matmul")
    with pytest.raises(RuntimeError, match="op: inputs are on different devices, cuda and cpu"):
        backend.array_module(_FakeDeviceArray(), np.zeros(2))


@pytest.mark.parametrize("op, op_name", [(lambda a, b: a + b, "Add"), (lambda a, b: a @ b, "MatMul"),
                                         (lambda a, b: tt.cat([a, b]), "Concatenate"),
                                         (lambda a, b: a[b], "getitem"),
                                         (lambda a, b: F.embedding(b, a), "Embedding")])
def test_an_op_on_tensors_from_two_devices_names_the_op_and_both_devices(op, op_name, monkeypatch):
    """Without a GPU: b's array is marked (an ndarray subclass) and `backend.device_of` says it lives on 'cuda'."""
    a, b = tt.ones(2, 2), tt.tensor([[0, 1], [1, 0]]) if op_name in ("getitem", "Embedding") else tt.ones(2, 2)
    b.data = b.data.view(_MarkedAsCuda)
    cpu_device_of = backend.device_of
    monkeypatch.setattr(backend, "device_of",
                        lambda array: "cuda" if isinstance(array, _MarkedAsCuda) else cpu_device_of(array))
    with pytest.raises(RuntimeError, match=rf"{op_name}: inputs are on different devices, cpu and cuda"):
        op(a, b)


@pytest.mark.gpu
def test_an_op_on_a_cpu_and_a_cuda_tensor_names_both_devices():
    with pytest.raises(RuntimeError, match="Add: inputs are on different devices, cpu and cuda"):
        tt.ones(2) + tt.ones(2).to("cuda")


def test_unknown_device_names_what_was_asked_for():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tt.ones(2).to("tpu")


# ---- ids and targets ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_id", [5, 9, -1])
def test_embedding_id_out_of_range_names_the_id_and_the_vocabulary_size(bad_id):
    with pytest.raises(IndexError, match=rf"token id {bad_id} is out of range for a vocabulary of size 5"):
        F.embedding(tt.tensor([[0, bad_id], [4, 1]]), tt.zeros(5, 3))


def test_embedding_refuses_float_ids():
    with pytest.raises(TypeError, match="ids must be integers, got dtype float32"):
        F.embedding(tt.tensor([0.0, 1.0]), tt.zeros(5, 3))


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize("bad_target", [3, 7, -2])
def test_loss_target_out_of_range_names_the_target_and_the_class_count(loss, bad_target):
    with pytest.raises(IndexError, match=rf"target id {bad_target} is out of range for 3 classes"):
        loss(tt.zeros(4, 3), tt.tensor([0, -100, bad_target, 1]))


def test_cross_entropy_refuses_float_targets():
    with pytest.raises(TypeError, match="cross_entropy: targets must be integer class ids, got dtype float32"):
        F.cross_entropy(tt.zeros(2, 3), tt.tensor([0.0, 1.0]))


# ---- autograd misuse ---------------------------------------------------------------------------------------------
def test_backward_of_a_non_scalar_without_a_gradient_says_so_and_names_the_shape():
    y = tt.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"backward\(\) without a gradient needs a tensor with one element, got "
                                           r"shape \(2, 3\)"):
        y.backward()


def test_backward_with_a_gradient_of_the_wrong_shape_names_both_shapes():
    y = tt.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) != tensor shape \(2, 3\)"):
        y.backward(tt.ones(3))


def test_backward_of_a_tensor_that_does_not_require_grad_says_why():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (tt.ones(2) * 2).sum().backward()
