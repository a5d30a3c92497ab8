"""Tests for tinytensor.nn.attention: rotary embeddings, the KV cache and multi-head attention.

Gradients are checked in float64 against finite differences over drawn configurations (grouped heads, fused or
separate projections, causal or not, key padding, cross attention); values against a plain NumPy re-implementation
of Hugging Face's conventions; and the properties incremental decoding and masking rely on.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
import tinytensor.nn as nn  # noqa: PLR0402 - DESIGN.md spelling; `from tinytensor import nn` hits tt.ops.nn

F64 = tt.float64


def normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def scramble(module: nn.Module, seed: int = 0, scale: float = 1.0) -> nn.Module:
    """Random parameters of unit scale, so attention weights are far from uniform and biases matter."""
    rng = np.random.default_rng(seed)
    for param in module.parameters():
        param.data[...] = scale * rng.standard_normal(param.shape)
    return module


@st.composite
def attention_configs(draw):
    """A small attention layer's settings: heads ≤ 4, embed ≤ 8, T ≤ 3, and which features are on."""
    n_kv_heads = draw(st.sampled_from([1, 2]))
    num_heads = n_kv_heads * draw(st.sampled_from([1, 2]))
    head_dim = draw(st.sampled_from([2, 4])) if num_heads < 4 else 2
    return {"num_heads": num_heads, "n_kv_heads": n_kv_heads, "embed_dim": num_heads * head_dim,
            "fused_qkv": draw(st.booleans()), "bias": draw(st.booleans()), "cross": draw(st.booleans()),
            "is_causal": draw(st.booleans()), "batch": draw(st.integers(1, 2)), "length": draw(st.integers(1, 3)),
            "context_length": draw(st.integers(1, 3)), "seed": draw(st.integers(0, 99))}


def draw_key_padding(data, batch: int, length: int) -> np.ndarray:
    """[B, Tk] booleans, True = real token, with at least one real token per row."""
    rows = [data.draw(st.lists(st.booleans(), min_size=length, max_size=length).filter(any)) for _ in range(batch)]
    return np.array(rows)


def build_attention(config, **options) -> nn.MultiHeadAttention:
    layer = nn.MultiHeadAttention(config["embed_dim"], config["num_heads"], n_kv_heads=config["n_kv_heads"],
                                  bias=config["bias"], fused_qkv=config["fused_qkv"], dtype=F64, **options)
    return scramble(layer, config["seed"])


def split_weights(layer: nn.MultiHeadAttention):
    """(Wq, bq, Wk, bk, Wv, bv) as NumPy arrays, whichever projection layout the layer uses."""
    q_size, kv_size = layer.num_heads * layer.head_dim, layer.n_kv_heads * layer.head_dim
    if layer.fused_qkv:
        rows = [slice(0, q_size), slice(q_size, q_size + kv_size), slice(q_size + kv_size, None)]
        projections = [(layer.qkv_proj, r) for r in rows]
    else:
        projections = [(p, slice(None)) for p in (layer.q_proj, layer.k_proj, layer.v_proj)]
    out = []
    for proj, rows in projections:
        bias = proj.bias.numpy()[rows] if proj.bias is not None else 0.0
        out += [proj.weight.numpy()[rows], bias]
    return out


def reference_attention(layer, x, context=None, keep=None, positions=None):
    """Hugging Face's eager attention in NumPy: split heads, repeat_interleave kv heads, rotate-half RoPE."""
    wq, bq, wk, bk, wv, bv = split_weights(layer)
    source = x if context is None else context
    heads, kv_heads, d = layer.num_heads, layer.n_kv_heads, layer.head_dim

    def split(t, n):
        return t.reshape(t.shape[0], t.shape[1], n, d).transpose(0, 2, 1, 3)

    q, k, v = split(x @ wq.T + bq, heads), split(source @ wk.T + bk, kv_heads), split(source @ wv.T + bv, kv_heads)
    if positions is not None:
        q, k = reference_rotary(q, positions, layer.rotary.theta), reference_rotary(k, positions, layer.rotary.theta)
    k, v = np.repeat(k, heads // kv_heads, axis=1), np.repeat(v, heads // kv_heads, axis=1)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    with np.errstate(invalid="ignore"):  # a row with no visible key gives NaN here; callers skip such rows
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
    merged = (weights @ v).transpose(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], heads * d)
    out_bias = layer.out_proj.bias.numpy() if layer.out_proj.bias is not None else 0.0
    return merged @ layer.out_proj.weight.numpy().T + out_bias


def reference_rotary(x, positions, theta):
    """Rotate each pair (x_j, x_{j+d/2}) by the angle position·theta^(−2j/d), written out pair by pair."""
    d = x.shape[-1]
    out = np.empty_like(x)
    for j in range(d // 2):
        angle = np.asarray(positions)[:, None] * theta ** (-2 * j / d)
        first, second = x[..., :, j:j + 1], x[..., :, j + d // 2:j + d // 2 + 1]
        out[..., j:j + 1] = first * np.cos(angle) - second * np.sin(angle)
        out[..., j + d // 2:j + d // 2 + 1] = second * np.cos(angle) + first * np.sin(angle)
    return out


def causal_keep(q_len, k_len):
    return np.tril(np.ones((q_len, k_len), dtype=bool), k=k_len - q_len)


# ---- multi-head attention: gradients and values -------------------------------------------------------------------
@given(attention_configs(), st.data())
def test_attention_gradients_match_finite_differences_for_drawn_configurations(config, data):
    layer = build_attention(config)
    x = tt.tensor(normal((config["batch"], config["length"], config["embed_dim"]), config["seed"]),
                  requires_grad=True)
    key_length = config["context_length"] if config["cross"] else config["length"]
    context = (tt.tensor(normal((config["batch"], key_length, config["embed_dim"]), config["seed"] + 1),
                         requires_grad=True) if config["cross"] else None)
    padding = draw_key_padding(data, config["batch"], key_length) if data.draw(st.booleans()) else None

    def attend(x, context, *params):
        return layer(x, context=context, key_padding_mask=padding, is_causal=config["is_causal"])

    assert tt.gradcheck(attend, [x, context, *layer.parameters()])


@given(attention_configs(), st.data())
def test_attention_matches_a_numpy_reference_with_repeat_interleaved_kv_heads(config, data):
    layer = build_attention(config)
    x = normal((config["batch"], config["length"], config["embed_dim"]), config["seed"])
    context = normal((config["batch"], config["context_length"], config["embed_dim"]), 1) if config["cross"] else None
    key_length = config["context_length"] if config["cross"] else config["length"]
    padding = draw_key_padding(data, config["batch"], key_length)
    keep = np.broadcast_to(padding[:, None, None, :], (config["batch"], 1, config["length"], key_length))
    if config["is_causal"]:
        keep = keep & causal_keep(config["length"], key_length)
    got = layer(tt.tensor(x), context=None if context is None else tt.tensor(context), key_padding_mask=padding,
                is_causal=config["is_causal"])
    rows_with_keys = keep.any(-1)[:, 0, :]  # a query row with no visible key has unspecified output
    expected = reference_attention(layer, x, context, keep)
    np.testing.assert_allclose(got.numpy()[rows_with_keys], expected[rows_with_keys],
                               rtol=1e-10, atol=1e-12)


def test_fused_projection_is_q_then_k_then_v_with_grouped_sizes():
    layer = nn.MultiHeadAttention(8, 4, n_kv_heads=2)
    assert {name: p.shape for name, p in layer.named_parameters()} == {
        "qkv_proj.weight": ((4 + 2 * 2) * 2, 8), "qkv_proj.bias": (16,), "out_proj.weight": (8, 8),
        "out_proj.bias": (8,)}
    separate = nn.MultiHeadAttention(8, 4, n_kv_heads=2, fused_qkv=False, bias=False, kdim=6)
    assert {name: p.shape for name, p in separate.named_parameters()} == {
        "q_proj.weight": (8, 8), "k_proj.weight": (4, 6), "v_proj.weight": (4, 6), "out_proj.weight": (8, 8)}


def test_cross_attention_accepts_a_context_of_another_width_and_length():
    layer = scramble(nn.MultiHeadAttention(4, 2, fused_qkv=False, kdim=3, dtype=F64))
    x, context = normal((2, 3, 4)), normal((2, 5, 3), 1)
    np.testing.assert_allclose(layer(tt.tensor(x), context=tt.tensor(context)).numpy(),
                               reference_attention(layer, x, context), rtol=1e-10)


# ---- masks ----------------------------------------------------------------------------------------------------------
@given(st.integers(1, 2), st.integers(2, 4), st.booleans(), st.data())
def test_values_at_padded_keys_do_not_change_outputs_at_real_positions(batch, length, is_causal, data):
    layer = scramble(nn.MultiHeadAttention(4, 2, n_kv_heads=1, dtype=F64))
    padding = draw_key_padding(data, batch, length)
    x = normal((batch, length, 4))
    changed = np.where(padding[..., None], x, 100 * normal(x.shape, 1))

    def attend(inputs, mask):
        return layer(tt.tensor(inputs), key_padding_mask=mask, is_causal=is_causal).numpy()

    visible = causal_keep(length, length) if is_causal else np.ones((length, length), dtype=bool)
    real = padding & (visible[None] & padding[:, None, :]).any(-1)  # real queries that see at least one real key
    np.testing.assert_allclose(attend(x, padding)[real], attend(changed, padding)[real], rtol=1e-12, atol=1e-12)
    sees_padding = (visible[None] & ~padding[:, None, :]).any(-1) & real
    if sees_padding.any():  # without the mask the change would show: the comparison above can fail
        assert not np.allclose(attend(x, None)[sees_padding], attend(changed, None)[sees_padding])


@given(st.integers(1, 4), st.integers(0, 3))
def test_causal_attention_ignores_future_tokens(length, position):
    position = min(position, length - 1)
    layer = scramble(nn.MultiHeadAttention(4, 2, fused_qkv=False, dtype=F64))
    x = normal((1, length, 4))
    changed = x.copy()
    changed[:, position + 1:] += 10.0
    first, second = (layer(tt.tensor(t), is_causal=True).numpy() for t in (x, changed))
    np.testing.assert_allclose(first[:, :position + 1], second[:, :position + 1], rtol=1e-12)
    assert position == length - 1 or not np.allclose(first[:, position + 1:], second[:, position + 1:])


def test_boolean_and_additive_attention_masks_combine_with_key_padding():
    layer = scramble(nn.MultiHeadAttention(4, 2, dtype=F64))
    x = normal((1, 3, 4))
    padding = np.array([[True, True, False]])
    extra = np.array([[True, False, True], [True, True, True], [False, True, True]])
    keep = padding[:, None, None, :] & extra
    expected = reference_attention(layer, x, keep=keep)
    got_bool = layer(tt.tensor(x), key_padding_mask=padding, attn_mask=extra).numpy()
    got_additive = layer(tt.tensor(x), key_padding_mask=padding.astype(np.int64),
                         attn_mask=np.where(extra, 0.0, -1e9)).numpy()
    np.testing.assert_allclose(got_bool, expected, rtol=1e-10)
    np.testing.assert_allclose(got_additive, expected, rtol=1e-10)


def test_key_padding_mask_of_the_wrong_shape_is_refused():
    layer = nn.MultiHeadAttention(4, 2)
    with pytest.raises(ValueError, match=r"key_padding_mask has shape \(1, 2\), expected \[B, Tk\] = \(1, 3\)"):
        layer(tt.randn(1, 3, 4), key_padding_mask=np.ones((1, 2), dtype=bool))


def test_attention_dropout_applies_only_in_training():
    layer = nn.MultiHeadAttention(4, 2, dropout=0.5)
    x = tt.randn(2, 3, 4)
    assert not np.allclose(layer(x).numpy(), layer(x).numpy())
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())


@pytest.mark.parametrize("options, message", [
    ({"embed_dim": 6, "num_heads": 4}, "not divisible"),
    ({"embed_dim": 8, "num_heads": 4, "n_kv_heads": 3}, "not a multiple"),
    ({"embed_dim": 8, "num_heads": 2, "kdim": 3}, "fused_qkv=False"),
    ({"embed_dim": 8, "num_heads": 2, "rotary": nn.RotaryEmbedding(2)}, "rotary head_dim"),
])
def test_inconsistent_attention_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        nn.MultiHeadAttention(**options)


# ---- rotary embeddings ----------------------------------------------------------------------------------------------
@given(st.integers(1, 2), st.integers(1, 3), st.sampled_from([2, 4]), st.integers(0, 5), st.integers(0, 99))
def test_rotary_gradients_match_finite_differences(heads, length, head_dim, offset, seed):
    rotary = nn.RotaryEmbedding(head_dim, max_position_embeddings=8, dtype=F64)
    q = tt.tensor(normal((2, heads, length, head_dim), seed), requires_grad=True)
    k = tt.tensor(normal((2, 1, length, head_dim), seed + 1), requires_grad=True)
    assert tt.gradcheck(lambda q, k: rotary(q, k, position_offset=offset), [q, k])


@given(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20), st.integers(0, 99))
def test_rotary_makes_query_key_products_depend_only_on_the_position_offset(m, n, shift, seed):
    rotary = nn.RotaryEmbedding(4, max_position_embeddings=64, theta=100.0, dtype=F64)
    q, k = tt.tensor(normal((1, 1, 1, 4), seed)), tt.tensor(normal((1, 1, 1, 4), seed + 1))

    def score(query_position, key_position):
        rotated_q, rotated_k = rotary.rotate(q, [query_position]), rotary.rotate(k, [key_position])
        return float((rotated_q * rotated_k).sum())

    assert score(m, n) == pytest.approx(score(m + shift, n + shift), rel=1e-12, abs=1e-12)
    if m != n:  # while it does change with the offset itself, so the equality above is not trivial
        assert score(m, n) != pytest.approx(score(m, m), rel=1e-6)


def test_rotary_pairs_dimension_j_with_j_plus_half_and_turns_by_position_times_inverse_frequency():
    rotary = nn.RotaryEmbedding(6, max_position_embeddings=16, theta=500.0, dtype=F64)
    x = normal((2, 3, 4, 6))
    got = rotary.rotate(tt.tensor(x), [3, 0, 7, 15]).numpy()
    np.testing.assert_allclose(got, reference_rotary(x, [3, 0, 7, 15], 500.0), rtol=1e-13, atol=1e-15)


def test_rotary_accepts_one_row_of_positions_per_sequence():
    rotary = nn.RotaryEmbedding(4, max_position_embeddings=8, dtype=F64)
    x = normal((2, 3, 2, 4))
    positions = np.array([[0, 1], [4, 5]])
    got = rotary.rotate(tt.tensor(x), positions).numpy()
    for row in range(2):
        np.testing.assert_allclose(got[row], reference_rotary(x[row], positions[row], 10000.0), rtol=1e-13)


def test_rotary_tables_are_exact_in_float64_after_a_float32_round_trip_and_not_saved():
    rotary = nn.RotaryEmbedding(4, max_position_embeddings=8)
    assert rotary.cos_cached.dtype == tt.float32
    rotary.to(tt.float64)
    angles = np.arange(8)[:, None] * 10000.0 ** (-np.arange(0, 4, 2) / 4)
    np.testing.assert_array_equal(rotary.cos_cached.numpy(), np.cos(np.concatenate([angles, angles], -1)))
    assert rotary.state_dict() == {} and nn.MultiHeadAttention(4, 1, rotary=rotary).state_dict().keys() == {
        "qkv_proj.weight", "qkv_proj.bias", "out_proj.weight", "out_proj.bias"}


def test_rotary_keeps_float32_inputs_in_float32():
    rotary = nn.RotaryEmbedding(4, dtype=F64)
    q = tt.randn(1, 1, 2, 4)
    assert all(t.dtype == tt.float32 for t in rotary(q, q))


def test_rotary_positions_beyond_the_table_are_refused():
    with pytest.raises(ValueError, match="raise max_position_embeddings"):
        nn.RotaryEmbedding(2, max_position_embeddings=4)(tt.randn(1, 1, 2, 2), tt.randn(1, 1, 2, 2),
                                                          position_offset=3)


def test_attention_with_rotary_matches_the_reference():
    layer = scramble(nn.MultiHeadAttention(8, 4, n_kv_heads=2, rotary=nn.RotaryEmbedding(2, 16, 50.0, dtype=F64),
                                           dtype=F64))
    x = normal((2, 3, 8))
    expected = reference_attention(layer, x, keep=causal_keep(3, 3), positions=np.arange(3))
    np.testing.assert_allclose(layer(tt.tensor(x), is_causal=True).numpy(), expected, rtol=1e-10)


# ---- key/value cache ------------------------------------------------------------------------------------------------
@given(st.integers(1, 4), st.booleans(), st.sampled_from([(4, 1), (4, 2), (2, 2)]), st.integers(0, 99))
def test_decoding_one_token_at_a_time_with_the_cache_matches_the_full_forward(prompt_length, fused, heads, seed):
    num_heads, n_kv_heads = heads
    rotary = nn.RotaryEmbedding(8 // num_heads, max_position_embeddings=8, dtype=F64)
    layer = scramble(nn.MultiHeadAttention(8, num_heads, n_kv_heads=n_kv_heads, fused_qkv=fused, rotary=rotary,
                                           dtype=F64), seed)
    x = tt.tensor(normal((2, 6, 8), seed))
    full = layer(x, is_causal=True).numpy()
    cache = nn.KVCache()
    pieces = [layer(x[:, :prompt_length], is_causal=True, cache=cache)]
    pieces += [layer(x[:, t:t + 1], is_causal=True, cache=cache) for t in range(prompt_length, 6)]
    assert cache.length == 6 and cache.k.shape == (2, n_kv_heads, 6, 8 // num_heads)
    np.testing.assert_allclose(np.concatenate([p.numpy() for p in pieces], axis=1), full, rtol=1e-10, atol=1e-12)


def test_cross_attention_cache_projects_the_context_once_and_reuses_it():
    layer = scramble(nn.MultiHeadAttention(4, 2, dtype=F64))
    x, context = tt.tensor(normal((1, 3, 4))), tt.tensor(normal((1, 5, 4), 1))
    full = layer(x, context=context).numpy()
    cache = nn.KVCache()
    first = layer(x[:, :1], context=context, cache=cache)
    rest = [layer(x[:, t:t + 1], context=tt.zeros(1, 5, 4, dtype=F64), cache=cache) for t in (1, 2)]
    assert cache.length == 5
    np.testing.assert_allclose(np.concatenate([t.numpy() for t in (first, *rest)], axis=1), full, rtol=1e-12)


def test_kv_cache_appends_along_time():
    cache = nn.KVCache()
    assert cache.length == 0
    k, v = cache.append(tt.zeros(1, 2, 3, 4), tt.ones(1, 2, 3, 4))
    k, v = cache.append(tt.ones(1, 2, 1, 4), tt.zeros(1, 2, 1, 4))
    assert cache.length == 4 and k.shape == v.shape == (1, 2, 4, 4)
    assert k.numpy()[:, :, 3].all() and not v.numpy()[:, :, 3].any()


def test_attention_with_rotary_masks_and_cache_gives_the_same_numbers_on_every_device(device):
    layer = scramble(nn.MultiHeadAttention(8, 4, n_kv_heads=2, rotary=nn.RotaryEmbedding(2, 8, dtype=F64),
                                           dtype=F64))
    x, padding = normal((2, 3, 8)), np.array([[True, True, True], [False, True, True]])
    expected = layer(tt.tensor(x), key_padding_mask=padding, is_causal=True).numpy()
    layer.to(device)
    cache = nn.KVCache()
    prompt = layer(tt.tensor(x[:, :2], device=device), key_padding_mask=padding[:, :2], is_causal=True, cache=cache)
    step = layer(tt.tensor(x[:, 2:], device=device), key_padding_mask=padding, is_causal=True, cache=cache)
    assert step.device == device
    got = np.concatenate([prompt.numpy(), step.numpy()], axis=1)
    np.testing.assert_allclose(got[padding], expected[padding], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_packed_attention_over_batch_lanes_equals_the_single_lane_result(monkeypatch, dropout_p):
    """Spreading the batch over cores (ops.attention._batch_lanes) must not change outputs, gradients or the
    dropout draw."""
    from tinytensor.ops import attention

    results = []
    for lane_threshold in (1, 1 << 40):  # lanes always, lanes never
        monkeypatch.setattr(attention, "_LANE_MIN_SCORES", lane_threshold)
        monkeypatch.setattr(tt.backend, "_worker_cores", 2)
        tt.manual_seed(0)
        qkv = tt.tensor(np.random.default_rng(1).standard_normal((5, 16, 3 * 32)).astype(np.float32),
                        requires_grad=True)
        out = nn.functional.packed_self_attention(qkv, 4, is_causal=True, dropout_p=dropout_p)
        (out * out).sum().backward()
        results.append((out.numpy(), qkv.grad.numpy()))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
