"""Float32 stays float32: Python scalars are weak, so no op (forward or backward) silently promotes to float64.

Every op runs on a float32 tensor, mixed with Python ints and floats wherever it takes them; its output and the
gradient that reaches the float32 leaf must both be float32. The same table in float64 must stay float64.
"""
import numpy as np
import pytest

import tinytensor as tt
import tinytensor.nn.functional as F

_MASK = np.array([[True, False, True], [False, False, True]])
_IDS = np.array([[0, 2], [1, 1]])
_TARGETS = np.array([2, -100])


def _on(x, array):
    """A constant (mask, ids, targets) on the device of x."""
    return tt.tensor(array).to(x.device)


# name: op on a [2, 3] tensor x of positive values; every Python number in it is a weak scalar.
OPS_WITH_SCALARS = {
    "add": lambda x: x + 1.5, "radd": lambda x: 2 + x, "sub": lambda x: x - 0.25, "rsub": lambda x: 1 - x,
    "mul": lambda x: x * 3.0, "rmul": lambda x: 0.5 * x, "div": lambda x: x / 7, "rdiv": lambda x: 1.0 / x,
    "pow": lambda x: x**2.5, "int_pow": lambda x: x**2, "rpow": lambda x: 2.0**x, "neg": lambda x: -x,
    "exp": tt.exp, "log": tt.log, "sqrt": tt.sqrt, "rsqrt": tt.rsqrt, "tanh": tt.tanh, "sigmoid": tt.sigmoid,
    "relu": F.relu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu,
    "abs": tt.abs, "clamp": lambda x: x.clamp(0.5, 1.5), "clamp_int_bounds": lambda x: x.clamp(0, 1),
    "maximum": lambda x: tt.maximum(x, 0.75), "minimum": lambda x: tt.minimum(x, 1),
    "where": lambda x: tt.where(_on(x, _MASK), x, 0.0), "where_scalar_first": lambda x: tt.where(
        _on(x, _MASK), -1, x), "masked_fill": lambda x: x.masked_fill(_on(x, _MASK), -1e9),
    "sum": lambda x: x.sum(), "mean": lambda x: x.mean(1), "max": lambda x: x.amax(0), "min": lambda x: x.min(),
    "var": lambda x: x.var(1, correction=0), "logsumexp": lambda x: x.logsumexp(-1),
    "reshape": lambda x: x.reshape(3, 2), "flatten": lambda x: x.flatten(), "transpose": lambda x: x.T,
    "permute": lambda x: x.permute(1, 0), "unsqueeze": lambda x: x.unsqueeze(0), "squeeze": lambda x: x[None].squeeze(),
    "expand": lambda x: x.expand(4, 2, 3), "cat": lambda x: tt.cat([x, x], 1), "stack": lambda x: tt.stack([x, x]),
    "split": lambda x: x.split(2, 1)[1], "chunk": lambda x: x.chunk(2)[0], "pad": lambda x: tt.pad(x, (1, 2), 0.5),
    "getitem": lambda x: x[..., None, _on(x, [0, 0])], "mask_index": lambda x: x[_on(x, _MASK)],
    "gather": lambda x: x.gather(1, _on(x, _IDS)), "tril": lambda x: x.tril(), "triu": lambda x: x.triu(1),
    "matmul": lambda x: x @ x.T, "vector_matmul": lambda x: x[0] @ x[1],
    "softmax": lambda x: F.softmax(x * 0.5, -1), "log_softmax": lambda x: F.log_softmax(x, 0),
    "cross_entropy": lambda x: F.cross_entropy(x, _on(x, _TARGETS), label_smoothing=0.1),
    "cross_entropy_sum": lambda x: F.cross_entropy(x, _on(x, _TARGETS), reduction="sum"),
    "nll_loss": lambda x: F.nll_loss(x, _on(x, _TARGETS)), "mse_loss": lambda x: F.mse_loss(x, x * 0.5),
    "layer_norm": lambda x: F.layer_norm(x, 3, eps=1e-3), "layer_norm_affine": lambda x: F.layer_norm(
        x, 3, x[0], x[1]), "rms_norm": lambda x: F.rms_norm(x, 3, x[1], eps=1e-3),
    "dropout": lambda x: F.dropout(x, 0.3), "embedding": lambda x: F.embedding(_on(x, _IDS % 2), x),
    "attention": lambda x: F.scaled_dot_product_attention(x[None], x[None], x[None], is_causal=True, scale=0.5),
    "attention_masks": lambda x: F.scaled_dot_product_attention(x[None], x[None], x[None], dropout_p=0.2,
                                                                attn_mask=_on(x, np.ones((2, 2)))),
    "linear": lambda x: F.linear(x, x, x[0, :2]), "clone": tt.clone,
    "remainder": lambda x: x % 0.7, "rremainder": lambda x: 5 % x, "fmod": lambda x: tt.fmod(x, 2),
    "floor_divide": lambda x: x // 0.3 + x, "rfloor_divide": lambda x: 4.0 // x + x,
    "index_select": lambda x: x.index_select(1, _on(x, [2, 0, 2])),
    "scatter": lambda x: x.scatter(1, _on(x, _IDS), 0.5), "scatter_src": lambda x: x.scatter(1, _on(x, _IDS), x * 2),
    "scatter_add": lambda x: x.scatter_add(1, _on(x, _IDS), x), "expand_as": lambda x: x.expand_as(x[None]),
}


@pytest.mark.parametrize("dtype", [tt.float32, tt.float64], ids=str)
@pytest.mark.parametrize("name", OPS_WITH_SCALARS)
def test_op_with_python_scalars_keeps_the_input_float_dtype_forward_and_backward(name, dtype, device):
    x = tt.tensor(np.array([[0.5, 1.25, 2.0], [0.75, 1.5, 3.0]]), dtype=dtype).to(device).requires_grad_()
    out = OPS_WITH_SCALARS[name](x)
    assert out.dtype == dtype, f"{name} turned {dtype} into {out.dtype}"
    out.backward(tt.ones_like(out))
    assert x.grad is not None and x.grad.dtype == dtype, f"{name}'s backward gave {x.grad and x.grad.dtype}"


def test_python_numbers_become_pytorch_default_dtypes():
    assert tt.tensor(1.5).dtype == tt.float32 and tt.tensor([1, 2]).dtype == tt.int64
    assert tt.tensor(True).dtype == tt.bool_ and tt.tensor(np.zeros(2, np.float16)).dtype == tt.float16
    assert tt.zeros(2).dtype == tt.randn(2).dtype == tt.rand(2).dtype == tt.float32
    assert tt.arange(3).dtype == tt.int64 and tt.arange(0.0, 1.0, 0.5).dtype == tt.float32


def test_integer_tensors_meet_floats_as_float_and_divide_to_float():
    ids = tt.tensor([1, 2, 3])
    assert (ids * 2).dtype == tt.int64
    assert (ids * 0.5).dtype == tt.float32 and (ids / 2).dtype == tt.float32
    assert (ids + tt.tensor([1.0], dtype=tt.float64)).dtype == tt.float64
    assert (tt.tensor([1.0]) + tt.tensor([1.0], dtype=tt.float64)).dtype == tt.float64
    np.testing.assert_array_equal((ids / 2).numpy(), [0.5, 1.0, 1.5])


def test_float16_tensor_stays_float16_under_python_scalars():
    x = tt.tensor(np.array([0.5, 1.0], dtype=np.float16), requires_grad=True)
    out = F.gelu(x * 2.0 + 1) / 3
    assert out.dtype == tt.float16
    out.sum().backward()
    assert x.grad.dtype == tt.float16


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_float16_gelu_is_finite_and_close_to_float64(approximate):
    x = np.linspace(-12, 12, 97)
    half = F.gelu(tt.tensor(x.astype(np.float16)), approximate=approximate).numpy()
    assert half.dtype == np.float16 and np.isfinite(half).all()
    np.testing.assert_allclose(half, F.gelu(tt.tensor(x), approximate=approximate).numpy(), rtol=1e-2, atol=1e-3)
