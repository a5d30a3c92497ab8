"""Gradients of gradients (issue 18): `tt.autograd.grad`, `backward(create_graph=True)`, `tt.gradgradcheck`.

Three kinds of test: every op differentiates twice (second derivatives against finite differences of first
derivatives, float64, over drawn shapes, values and options, a GPT block and a LLaMA decoder layer included); each
fused op equals its plain version in `ops/composed.py` (forward and first-order backward); and `autograd.grad`
keeps PyTorch's contract (allow_unused, retain_graph, grad_outputs, `.grad` untouched, errors).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, distinct_arrays, index_arrays, scaled_examples, shapes, tensor

import tinytensor as tt
import tinytensor.nn.functional as F
from tinytensor.gradcheck import GradcheckError
from tinytensor.ops import composed

few = scaled_examples(0.2)


def leaves(*arrays_):
    return [tensor(a, dtype=tt.float64, requires_grad=True) for a in arrays_]


def seeded(fn, seed: int = 7):
    """fn reseeding the generators on every call, so dropout draws the same mask each time."""

    def call(*args):
        tt.manual_seed(seed)
        return fn(*args)

    return call


# ---- every primitive op, twice ---------------------------------------------------------------------------------
POSITIVE = dict(low=0.5, high=2.0)
UNARY = {
    "neg": lambda a: -a * a,
    "exp": tt.exp,
    "log": (tt.log, POSITIVE),
    "sqrt": (tt.sqrt, POSITIVE),
    "rsqrt": (tt.rsqrt, POSITIVE),
    "tanh": tt.tanh,
    "sigmoid": tt.sigmoid,
    "erf": tt.erf,
    "abs": (lambda a: tt.abs(a) * a, dict(away_from=(0.0,), margin=0.1)),
    "relu": (lambda a: tt.relu(a) * a, dict(away_from=(0.0,), margin=0.1)),
    "clamp": (lambda a: tt.clamp(a, -0.5, 0.5) * a, dict(away_from=(-0.5, 0.5), margin=0.1)),
    "pow_scalar": (lambda a: a ** 3.5, POSITIVE),
    "sum": lambda a: (a * a).sum(),
    "mean_last": lambda a: (a * a * a).mean(-1),
    "var": lambda a: a.var(-1, keepdim=True),
    "std": (lambda a: a.std(), dict(distinct=True)),  # never a spread of 0, where std has no derivative
    "norm": (lambda a: a.norm(dim=-1), dict(away_from=(0.0,), margin=0.2)),
    "norm_p3": (lambda a: a.norm(p=3), dict(away_from=(0.0,), margin=0.2)),
    "logsumexp": lambda a: a.logsumexp(-1),
    "cumsum": lambda a: a.cumsum(-1) ** 2,
    "reshape_permute": lambda a: (a * a).T.reshape(-1),
    "expand": lambda a: (a * a).unsqueeze(0).expand(2, *a.shape),
    "getitem_repeats": lambda a: (a * a)[[0, 0, -1]],
    "getitem_slice": lambda a: (a ** 3)[::-1, 1:],
    "gather": lambda a: (a * a).gather(0, np.zeros((1, a.shape[1]), dtype=np.int64)),
    "pad": lambda a: F.pad(a * a, (1, 2)),
    "cat_split": lambda a: tt.cat([a * a, a ** 3], 1).split(1, 1)[0] * a,
    "tril_roll_repeat": lambda a: (a * a).tril().roll(1, 0).repeat(2, 1),
    "clone_contiguous": lambda a: (a * a).clone().T.contiguous(),
    "softmax": lambda a: F.softmax(a, -1),
    "log_softmax": lambda a: F.log_softmax(a, 0),
    "gelu": F.gelu,
    "gelu_tanh": lambda a: F.gelu(a, approximate="tanh"),
    "silu": F.silu,
}


@pytest.mark.parametrize("name", sorted(UNARY))
@few
@given(data=st.data())
def test_unary_op_second_derivatives_match_finite_differences(name, data):
    fn, options = UNARY[name] if isinstance(UNARY[name], tuple) else (UNARY[name], {})
    options = dict(options)
    shape = data.draw(shapes(min_dims=2, max_dims=2, min_side=2, max_side=3))
    values = data.draw(distinct_arrays(shape, spacing=0.4) if options.pop("distinct", False) else
                       arrays(shape, **options))
    assert tt.gradgradcheck(fn, leaves(values))


def test_amax_second_derivative_is_zero_away_from_ties():
    x = leaves(np.array([[0.3, -1.2, 2.0], [1.0, 0.1, -0.5]]))
    assert tt.gradgradcheck(lambda a: a.amax(-1) * a.sum(), x)


BINARY = {
    "add": lambda a, b: (a + b) ** 2,
    "sub": lambda a, b: (a - b) * a,
    "mul": lambda a, b: a * b * b,
    "div": lambda a, b: a / (b * b + 1),
    "pow": lambda a, b: (a * a + 1) ** b,
    "where": lambda a, b: tt.where(a > 0, a * b, b * b),
    "maximum": lambda a, b: tt.maximum(a, b) * a,
}


@pytest.mark.parametrize("name", sorted(BINARY))
@few
@given(data=st.data())
def test_broadcasting_binary_op_second_derivatives_match_finite_differences(name, data):
    shape_a, shape_b = data.draw(st.sampled_from([((2, 3), (3,)), ((2, 1), (1, 3)), ((3,), (2, 3))]))
    size_a, size_b = int(np.prod(shape_a)), int(np.prod(shape_b))
    values = data.draw(distinct_arrays((size_a + size_b,), spacing=0.4, center=0.2))  # no ties, none within 0.1 of 0
    a, b = values[:size_a].reshape(shape_a), values[size_a:].reshape(shape_b)
    assert tt.gradgradcheck(BINARY[name], leaves(a, b))


@few
@given(data=st.data(), batch=st.sampled_from([(), (2,)]), vector=st.sampled_from(["none", "left", "right"]))
def test_matmul_and_einsum_second_derivatives_match_finite_differences(data, batch, vector):
    a_shape = (3,) if vector == "left" else (*batch, 2, 3)
    b_shape = (3,) if vector == "right" else (3, 2)
    a, b = leaves(data.draw(arrays(a_shape)), data.draw(arrays(b_shape)))
    assert tt.gradgradcheck(lambda a, b: (a @ b) ** 2, [a, b])
    c, d = leaves(data.draw(arrays((2, 3))), data.draw(arrays((3, 2))))
    assert tt.gradgradcheck(lambda c, d: tt.einsum("ij,jk->ik", c * c, d), [c, d])


# ---- every fused op, twice, with its options ---------------------------------------------------------------------
@few
@given(data=st.data(), reduction=st.sampled_from(["mean", "sum", "none"]), smoothing=st.sampled_from([0.0, 0.2]),
       ignore=st.booleans())
def test_cross_entropy_second_derivatives_match_finite_differences(data, reduction, smoothing, ignore):
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(2, 4))
    targets = data.draw(index_arrays((n,), c))
    if ignore and n > 1:  # with every target ignored the mean is 0/0 = NaN, as in PyTorch: nothing to check
        targets[0] = -100
    logits = leaves(data.draw(arrays((n, c))))
    assert tt.gradgradcheck(lambda x: F.cross_entropy(x, targets, reduction=reduction, label_smoothing=smoothing),
                            logits)


@few
@given(data=st.data(), affine=st.sampled_from(["none", "weight", "both"]), rms=st.booleans())
def test_layer_and_rms_norm_second_derivatives_match_finite_differences(data, affine, rms):
    x = data.draw(arrays((2, 3)))
    params = [data.draw(arrays((3,))) for _ in range({"none": 0, "weight": 1, "both": 2}[affine])]
    if rms:
        assert tt.gradgradcheck(lambda x, *p: F.rms_norm(x, (3,), *p), leaves(x, *params[:1]))
    else:
        assert tt.gradgradcheck(lambda x, *p: F.layer_norm(x, (3,), *p), leaves(x, *params))


@few
@given(data=st.data(), padding=st.sampled_from([None, 0]))
def test_embedding_linear_and_dropout_second_derivatives_match_finite_differences(data, padding):
    weight, x, bias = leaves(data.draw(arrays((3, 2))), data.draw(arrays((2, 2))), data.draw(arrays((3,))))
    ids = data.draw(index_arrays((2, 2), 3))
    assert tt.gradgradcheck(lambda w: F.embedding(ids, w * w, padding_idx=padding), [weight])
    assert tt.gradgradcheck(lambda x, w, b: F.linear(x * x, w, b) ** 2, [x, weight, bias])
    assert tt.gradgradcheck(seeded(lambda x: F.dropout(x * x, 0.4)), [x])


@few
@given(data=st.data(), heads=st.sampled_from([(2, 2), (2, 1), (4, 2)]), mask=st.sampled_from(["none", "causal",
       "bool", "float"]), dropout=st.sampled_from([0.0, 0.3]))
def test_attention_second_derivatives_match_finite_differences(data, heads, mask, dropout):
    n_heads, n_kv = heads
    q_len, k_len = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    q, k, v = leaves(data.draw(arrays((1, n_heads, q_len, 2))), data.draw(arrays((1, n_kv, k_len, 2))),
                     data.draw(arrays((1, n_kv, k_len, 2))))
    attn_mask = {"none": None, "causal": None, "bool": data.draw(st.just(np.tri(q_len, k_len, dtype=bool))),
                 "float": data.draw(arrays((n_heads, q_len, k_len)))}[mask]
    fn = seeded(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask, dropout, is_causal=mask == "causal"))
    assert tt.gradgradcheck(fn, [q, k, v])


@few
@given(data=st.data(), causal=st.booleans(), dropout=st.sampled_from([0.0, 0.3]))
def test_packed_self_attention_second_derivatives_match_finite_differences(data, causal, dropout):
    qkv = leaves(data.draw(arrays((1, 3, 6))))
    fn = seeded(lambda qkv: F.packed_self_attention(qkv, 1, dropout_p=dropout, is_causal=causal))
    assert tt.gradgradcheck(fn, qkv)


# ---- whole blocks -------------------------------------------------------------------------------------------------
def _check_block_twice(block, x, probe_params: int = 3) -> None:
    """gradgradcheck (fast: one random direction per input) w.r.t. the block input and a few parameters."""
    block.to(tt.float64)
    params = [p for _, p in block.named_parameters()][:probe_params]
    inputs = [x, *params]

    def run(x, *_):
        return block(x)

    assert tt.gradgradcheck(run, inputs, fast=True)


def test_gpt_block_second_derivatives_match_finite_differences():
    from models.gpt_char import Block, GPTConfig

    config = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=4, dropout=0.0)
    x = leaves(np.random.default_rng(0).standard_normal((1, 3, 4)))[0]
    _check_block_twice(Block(config), x)
    _check_block_twice(Block(GPTConfig(**{**config.to_dict(), "activation": "gelu"})), x)


def test_llama_decoder_layer_second_derivatives_match_finite_differences():
    import tinytensor.nn as nn
    from models.llama import LlamaConfig, LlamaDecoderLayer

    config = LlamaConfig(vocab_size=5, hidden_size=8, intermediate_size=6, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8)
    layer = LlamaDecoderLayer(config)
    rotary = nn.RotaryEmbedding(config.head_dim, 8, theta=10000.0)
    rotary.to(tt.float64)
    x = leaves(np.random.default_rng(1).standard_normal((1, 3, 8)))[0]
    layer.to(tt.float64)
    params = [p for _, p in layer.named_parameters()][:3]
    assert tt.gradgradcheck(lambda x, *_: layer(x, rotary, slice(0, 3)), [x, *params], fast=True)


# ---- plain versions equal the fused ops --------------------------------------------------------------------------
def _same_function(fused, plain, inputs, rtol=1e-10, atol=1e-12) -> None:
    """Equal outputs and equal first-order gradients of a random projection (float64)."""
    fused_out, plain_out = fused(*inputs), plain(*inputs)
    np.testing.assert_allclose(plain_out.numpy(), fused_out.numpy(), rtol=rtol, atol=atol)
    projection = tt.tensor(np.random.default_rng(0).standard_normal(fused_out.shape), dtype=tt.float64)
    wanted = [t for t in inputs if isinstance(t, tt.Tensor) and t.requires_grad]
    fused_grads = tt.autograd.grad((fused_out * projection).sum(), wanted, allow_unused=True)
    plain_grads = tt.autograd.grad((plain_out * projection).sum(), wanted, allow_unused=True)
    for f, p in zip(fused_grads, plain_grads):
        np.testing.assert_allclose(p.numpy() if p is not None else 0, f.numpy() if f is not None else 0,
                                   rtol=rtol, atol=atol)


@few
@given(data=st.data(), dim=st.sampled_from([0, -1]))
def test_plain_softmax_family_equals_the_fused_ops(data, dim):
    x = leaves(data.draw(arrays(data.draw(shapes(min_dims=1, max_dims=3)), low=-5, high=5)))
    _same_function(lambda x: F.softmax(x, dim), lambda x: composed.softmax(x, dim), x)
    _same_function(lambda x: F.log_softmax(x, dim), lambda x: composed.log_softmax(x, dim), x)
    _same_function(lambda x: x.logsumexp(dim), lambda x: composed.logsumexp(x, dim), x)


@few
@given(data=st.data(), reduction=st.sampled_from(["mean", "sum", "none"]), smoothing=st.sampled_from([0.0, 0.1]))
def test_plain_cross_entropy_equals_the_fused_op(data, reduction, smoothing):
    n, c = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    targets = data.draw(index_arrays((n,), c))
    if n > 1:  # some targets ignored, never all (a mean over no target is NaN)
        targets[data.draw(st.integers(0, n - 1))] = -1
    logits = leaves(data.draw(arrays((n, c), low=-5, high=5)))
    options = dict(ignore_index=-1, label_smoothing=smoothing, reduction=reduction)
    _same_function(lambda x: F.cross_entropy(x, targets, **options),
                   lambda x: composed.cross_entropy(x, tt.tensor(targets), **options), logits)


@few
@given(data=st.data(), width=st.integers(1, 4), affine=st.booleans())
def test_plain_norms_equal_the_fused_ops(data, width, affine):
    x, weight, bias = leaves(data.draw(arrays((2, 3, width))), data.draw(arrays((width,))),
                             data.draw(arrays((width,))))
    params = (weight, bias) if affine else ()
    _same_function(lambda x, *p: F.layer_norm(x, (width,), *p), lambda x, *p: composed.layer_norm(x, *p),
                   [x, *params])
    _same_function(lambda x, *p: F.rms_norm(x, (width,), *p[:1]), lambda x, *p: composed.rms_norm(x, *p[:1]),
                   [x, *params])


@few
@given(data=st.data())
def test_plain_activations_linear_dropout_and_embedding_equal_the_fused_ops(data):
    x, weight, bias = leaves(data.draw(arrays((2, 3), low=-4, high=4)), data.draw(arrays((4, 3))),
                             data.draw(arrays((4,))))
    for form in ("none", "tanh"):
        _same_function(lambda x, form=form: F.gelu(x, approximate=form), lambda x, form=form: composed.gelu(x, form),
                       [x])
    _same_function(F.silu, composed.silu, [x])
    _same_function(F.linear, composed.linear, [x, weight, bias])
    _same_function(lambda x, w: F.linear(x, w), composed.linear, [x, weight])
    ids = data.draw(index_arrays((2, 3), 4))
    for pad in (None, 1):
        _same_function(lambda w, pad=pad: F.embedding(ids, w, pad), lambda w, pad=pad: composed.embedding(ids, w, pad),
                       [weight])
    tt.manual_seed(3)
    drawn_mask = F.dropout(x, 0.5)._node.saved[0]  # the mask the fused op draws after this seed
    _same_function(seeded(lambda x: F.dropout(x, 0.5), 3), lambda x: composed.dropout(x, drawn_mask), [x])


@few
@given(data=st.data(), heads=st.sampled_from([(2, 2), (2, 1), (4, 2)]), mask=st.sampled_from(["none", "causal",
       "bool", "float", "empty_rows"]))
def test_plain_attention_equals_the_fused_ops(data, heads, mask):
    n_heads, n_kv = heads
    q_len, k_len = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    q, k, v = leaves(data.draw(arrays((2, n_heads, q_len, 3))), data.draw(arrays((2, n_kv, k_len, 3))),
                     data.draw(arrays((2, n_kv, k_len, 3))))
    attn_mask = {"none": None, "causal": None, "bool": data.draw(st.just(np.tri(q_len, k_len, dtype=bool))),
                 "float": data.draw(arrays((n_heads, q_len, k_len))),
                 "empty_rows": np.zeros((q_len, k_len), dtype=bool)}[mask]
    keep = None if mask == "float" else attn_mask
    if mask == "causal":
        keep = np.tri(q_len, k_len, k=k_len - q_len, dtype=bool)
    bias = attn_mask if mask == "float" else None
    _same_function(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal=mask == "causal"),
                   lambda q, k, v: composed.scaled_dot_product_attention(q, k, v, keep, bias, 1 / np.sqrt(3)),
                   [q, k, v])
    qkv = leaves(data.draw(arrays((2, q_len, 3 * n_heads * 2))))
    packed_keep = np.tri(q_len, dtype=bool) if mask == "causal" else None
    _same_function(lambda qkv: F.packed_self_attention(qkv, n_heads, is_causal=mask == "causal"),
                   lambda qkv: composed.packed_self_attention(qkv, n_heads, packed_keep, None, 1 / np.sqrt(2)), qkv)


# ---- autograd.grad and backward(create_graph=True): the contract --------------------------------------------------
def test_grad_returns_a_tuple_and_leaves_dot_grad_untouched():
    x, y = leaves(np.array([1.0, 2.0]), np.array([3.0, -1.0]))
    x.grad = tt.tensor([10.0, 10.0], dtype=tt.float64)
    grads = tt.autograd.grad((x * y).sum(), [x, y])
    assert isinstance(grads, tuple) and len(grads) == 2
    np.testing.assert_array_equal(grads[0].numpy(), [3.0, -1.0])
    np.testing.assert_array_equal(grads[1].numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [10.0, 10.0])
    assert y.grad is None


def test_grad_of_an_unused_input_is_an_error_unless_allow_unused():
    x, unused = leaves(np.array([1.0]), np.array([2.0]))
    with pytest.raises(RuntimeError, match="not used"):
        tt.autograd.grad((x * x).sum(), [x, unused])
    grad_x, grad_unused = tt.autograd.grad((x * x).sum(), [x, unused], allow_unused=True)
    assert grad_unused is None and grad_x.item() == 2.0


def test_grad_refuses_inputs_and_outputs_that_do_not_require_grad():
    x = leaves(np.array([1.0]))[0]
    constant = tt.tensor([1.0], dtype=tt.float64)
    with pytest.raises(RuntimeError, match="input 1 does not require grad"):
        tt.autograd.grad((x * 2).sum(), [x, constant])
    with pytest.raises(RuntimeError, match="output 0 does not require grad"):
        tt.autograd.grad(constant.sum(), [x])


def test_grad_outputs_weight_the_outputs_and_are_needed_for_non_scalars():
    x = leaves(np.array([1.0, 2.0, 3.0]))[0]
    y = x * x
    with pytest.raises(RuntimeError, match="grad_outputs"):
        tt.autograd.grad(y, x)
    (grad_x,) = tt.autograd.grad(y, x, grad_outputs=tt.tensor([1.0, 0.0, -1.0], dtype=tt.float64))
    np.testing.assert_array_equal(grad_x.numpy(), [2.0, 0.0, -6.0])


def test_grad_frees_the_graph_unless_retain_graph():
    x = leaves(np.array([1.0, 2.0]))[0]
    loss = (x.exp() * x).sum()
    first = tt.autograd.grad(loss, x, retain_graph=True)[0]
    second = tt.autograd.grad(loss, x)[0]
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    with pytest.raises(RuntimeError, match="second time"):
        tt.autograd.grad(loss, x)


def test_grad_with_respect_to_an_intermediate_tensor_and_several_outputs():
    x = leaves(np.array([1.0, 2.0]))[0]
    hidden = x * 3
    a, b = (hidden * hidden).sum(), hidden.sum()
    grad_hidden, grad_x = tt.autograd.grad([a, b], [hidden, x])
    np.testing.assert_allclose(grad_hidden.numpy(), 2 * hidden.numpy() + 1)
    np.testing.assert_allclose(grad_x.numpy(), 3 * (2 * hidden.numpy() + 1))
    assert x.grad is None


def test_hessian_vector_product_of_a_quadratic_is_the_matrix_times_the_vector():
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((3, 3))
    matrix = tt.tensor(matrix + matrix.T, dtype=tt.float64)
    x, v = leaves(rng.standard_normal(3))[0], tt.tensor(rng.standard_normal(3), dtype=tt.float64)
    (gradient,) = tt.autograd.grad(0.5 * (x @ (matrix @ x)), x, create_graph=True)
    assert gradient.requires_grad
    (hvp,) = tt.autograd.grad((gradient * v).sum(), x)
    np.testing.assert_allclose(hvp.numpy(), matrix.numpy() @ v.numpy(), rtol=1e-12)


def test_backward_with_create_graph_leaves_a_differentiable_grad():
    x = leaves(np.array([0.5, -1.0]))[0]
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    np.testing.assert_allclose(x.grad.numpy(), 3 * x.numpy() ** 2)
    (second,) = tt.autograd.grad(x.grad.sum(), x)
    np.testing.assert_allclose(second.numpy(), 6 * x.numpy())


def test_a_cast_passes_second_derivatives_back_in_the_source_dtype():
    x = tt.tensor([0.5, -1.0], requires_grad=True)
    (gradient,) = tt.autograd.grad((x.double() ** 3).sum(), x, create_graph=True)
    assert gradient.dtype == tt.float32
    (second,) = tt.autograd.grad(gradient.sum(), x)
    assert second.dtype == tt.float32
    np.testing.assert_allclose(second.numpy(), [3.0, -6.0])


def test_a_first_order_backward_keeps_building_no_graph():
    x = leaves(np.array([0.5, -1.0]))[0]
    (x ** 3).sum().backward()
    assert not x.grad.requires_grad and x.grad.is_leaf


def test_gradgradcheck_refuses_float32_and_catches_a_wrong_second_derivative():
    with pytest.raises(TypeError, match="float64"):
        tt.gradgradcheck(lambda a: a * a, [tt.tensor([1.0], requires_grad=True)])

    class WrongSquare(tt.autograd.Function):  # right first derivative, a second derivative of 0
        def forward(self, a):
            self.save_for_backward(a.copy())  # a copy is a constant under create_graph
            return a * a

        def backward(self, grad):
            return 2 * grad * self.saved[0]

    x = leaves(np.array([1.0, 2.0]))
    assert tt.gradcheck(lambda a: WrongSquare.apply(a), x)
    with pytest.raises(GradcheckError):
        tt.gradgradcheck(lambda a: WrongSquare.apply(a), x)


INDEX = np.array([[0, 1, 2], [3, 0, 1]])
INDEXING_OPS = {  # the ops added for PyTorch habits, whose backward picks or places elements
    "index_select": lambda x, s: tt.index_select(x * x, 0, tt.tensor([2, 0, 2])),
    "index_select_dim1": lambda x, s: tt.index_select(x * x, 1, tt.tensor([2, 2, 0])),
    "scatter": lambda x, s: (x * x).scatter(0, tt.tensor(INDEX), s * s),
    "scatter_add": lambda x, s: (x * x).scatter_add(0, tt.tensor(INDEX), s * s),
    "gather": lambda x, s: tt.gather(x * x, 1, tt.tensor([[0, 2], [1, 1], [2, 0], [0, 0]])),
    "remainder": lambda x, s: tt.remainder(x * x, 0.7) + s.sum(),
    "fmod": lambda x, s: tt.fmod(x * x * x, 0.7) + s.sum(),
    "expand_as": lambda x, s: (x[:1] * x[:1]).expand_as(x) + s.sum(),
}


@pytest.mark.parametrize("name", sorted(INDEXING_OPS))
def test_indexing_ops_second_derivatives_match_finite_differences(name):
    rng = np.random.default_rng(3)
    x = tt.tensor(rng.standard_normal((4, 3)), dtype=tt.float64, requires_grad=True)
    src = tt.tensor(rng.standard_normal((2, 3)), dtype=tt.float64, requires_grad=True)
    assert tt.gradgradcheck(INDEXING_OPS[name], [x, src])


def test_a_backward_with_no_graph_version_fails_loudly_instead_of_dropping_the_graph():
    class Untracked(tt.autograd.Function):
        def forward(self, a):
            return a * 2

        def backward(self, grad):
            out = self.xp.zeros_like(grad)
            self.xp.copyto(out, grad * 2)   # an array routine GraphXp does not make differentiable
            return out

    x = tt.tensor([1.0, 2.0], dtype=tt.float64, requires_grad=True)
    (gx,) = tt.autograd.grad(Untracked.apply(x * x).sum(), [x])
    assert gx.tolist() == [4.0, 8.0]
    with pytest.raises(TypeError, match="no differentiable version"):
        tt.autograd.grad(Untracked.apply(x * x).sum(), [x], create_graph=True)


def test_two_leaves_never_share_one_grad_tensor_under_create_graph():
    a = tt.tensor([1.0, 2.0], dtype=tt.float64, requires_grad=True)
    b = tt.tensor([3.0, 4.0], dtype=tt.float64, requires_grad=True)
    (a + b).sum().backward(create_graph=True)
    assert a.grad is not b.grad
    with tt.no_grad():
        a.grad.mul_(2.0)
    assert a.grad.tolist() == [2.0, 2.0] and b.grad.tolist() == [1.0, 1.0]


# ---- on the device ---------------------------------------------------------------------------------------------------
def test_hessian_vector_products_on_the_device_equal_the_cpu_ones(device):
    """create_graph=True through matmul, tanh, layer norm, softmax, attention and cross-entropy on each backend."""
    rng = np.random.default_rng(3)
    data = {"x": rng.standard_normal((2, 4, 6)), "w": rng.standard_normal((6, 6)) * 0.5,
            "v": rng.standard_normal((6, 6))}
    targets = rng.integers(0, 6, (8,))

    def hvp(where: str) -> np.ndarray:
        x, v = (tensor(data[k], where, tt.float64) for k in ("x", "v"))
        w = tensor(data["w"], where, tt.float64, requires_grad=True)
        h = F.layer_norm((x @ w).tanh(), (6,))
        h = F.scaled_dot_product_attention(h[:, None], h[:, None], h[:, None], is_causal=True)[:, 0]
        loss = F.cross_entropy(F.softmax(h, -1).reshape(8, 6) * 3.0, tensor(targets, where))
        g, = tt.autograd.grad(loss, w, create_graph=True)
        (g * v).sum().backward()
        return w.grad.numpy()

    np.testing.assert_allclose(hvp(device), hvp("cpu"), rtol=1e-10, atol=1e-12)
    w = tensor(data["w"][:3, :3], device, tt.float64, requires_grad=True)
    assert tt.gradgradcheck(lambda w: F.gelu(w @ w).sum(-1), [w])
