"""Fused neural-network ops (tinytensor/ops/nn.py): softmax family, losses, norms, dropout, embedding, attention.

Each op's backward is checked against finite differences over drawn shapes and options, its forward against a
plain NumPy formula, and the properties a model relies on are checked directly: softmax rows sum to 1 and stay
finite at ±1e4, layer norm standardises, causal attention ignores the future.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    arrays,
    axis,
    bool_masks,
    check_forward,
    check_gradient,
    check_op,
    distinct_arrays,
    index_arrays,
    op_settings,
    scaled_examples,
    shapes,
    tensor,
)

import tinytensor as tt
import tinytensor.nn.functional as F


def seeded(fn, seed: int = 1234):
    """fn, reseeding the generators before every call so each call draws the same dropout mask."""

    def call(*args):
        tt.manual_seed(seed)
        return fn(*args)

    return call


# ---- NumPy references --------------------------------------------------------------------------------------------
def np_softmax(x, axis=-1):
    exps = np.exp(x - x.max(axis=axis, keepdims=True))
    return exps / exps.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def np_cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """PyTorch's formula: (1 − ε)·(−log p_t) + ε·mean_c(−log p_c) per non-ignored item; mean over those items."""
    log_probs = np.moveaxis(np_log_softmax(logits, axis=1), 1, -1).reshape(-1, logits.shape[1])
    flat_targets = targets.reshape(-1)
    valid = flat_targets != ignore_index
    picked = -log_probs[np.arange(len(flat_targets)), np.where(valid, flat_targets, 0)]
    per_item = np.where(valid, (1 - label_smoothing) * picked - label_smoothing * log_probs.mean(axis=-1), 0.0)
    if reduction == "none":
        return per_item.reshape(targets.shape)
    return per_item.sum() if reduction == "sum" else per_item.sum() / valid.sum()


def np_nll_loss(log_probs, targets, ignore_index=-100, reduction="mean"):
    rows = np.moveaxis(log_probs, 1, -1).reshape(-1, log_probs.shape[1])
    flat_targets = targets.reshape(-1)
    valid = flat_targets != ignore_index
    per_item = np.where(valid, -rows[np.arange(len(flat_targets)), np.where(valid, flat_targets, 0)], 0.0)
    if reduction == "none":
        return per_item.reshape(targets.shape)
    return per_item.sum() if reduction == "sum" else per_item.sum() / valid.sum()


def np_layer_norm(x, weight=None, bias=None, eps=1e-5, n_axes=1):
    axes = tuple(range(-n_axes, 0))
    out = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    out = out * weight if weight is not None else out
    return out + bias if bias is not None else out


def np_rms_norm(x, weight=None, eps=1e-6, n_axes=1):
    out = x / np.sqrt((x * x).mean(tuple(range(-n_axes, 0)), keepdims=True) + eps)
    return out * weight if weight is not None else out


def np_attention(q, k, v, keep=None, bias=None, is_causal=False, scale=None):
    """Naive softmax(q·kᵀ/√d + mask)·v, with grouped-query heads expanded by np.repeat (as HF's repeat_kv)."""
    groups = q.shape[-3] // k.shape[-3]
    k, v = np.repeat(k, groups, axis=-3), np.repeat(v, groups, axis=-3)
    scores = q @ np.swapaxes(k, -1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if bias is not None:
        scores = scores + bias
    if is_causal:
        causal = np.tri(q.shape[-2], k.shape[-2], k=k.shape[-2] - q.shape[-2], dtype=bool)
        keep = causal if keep is None else keep & causal
    if keep is not None:  # a row with no visible key attends uniformly (tinytensor's documented choice)
        scores = np.where(keep, scores, np.finfo(np.float64).min)
    return np_softmax(scores) @ v


# ---- softmax family ----------------------------------------------------------------------------------------------
@op_settings
@given(data=st.data())
def test_softmax_and_log_softmax_match_numpy_and_finite_differences_over_axes(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    x = data.draw(arrays(shape, low=-5.0, high=5.0), label="x")
    check_op(lambda x: F.softmax(x, dim), lambda x: np_softmax(x, dim), x, device=device)
    check_op(lambda x: x.log_softmax(dim), lambda x: np_log_softmax(x, dim), x, device=device)


@op_settings
@given(data=st.data())
def test_softmax_rows_sum_to_one_and_stay_finite_at_logits_of_plus_and_minus_1e4(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    logits = data.draw(arrays(shape, low=-1e4, high=1e4), label="logits")
    logits.flat[0] = 1e4
    logits.flat[-1] = -1e4
    for dtype in (tt.float32, tt.float64):
        x = tensor(logits, device, dtype)
        probs, log_probs = F.softmax(x, -1).numpy(), F.log_softmax(x, -1).numpy()
        assert np.isfinite(probs).all() and np.isfinite(log_probs).all()
        assert (probs >= 0).all()
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-6 if dtype == tt.float32 else 1e-14)


@op_settings
@given(data=st.data())
def test_sum_keepdims_equals_numpy_sum_by_ones_product_and_by_reduction(monkeypatch, data):
    from tinytensor.ops import nn

    shape = data.draw(shapes(min_dims=1, max_dims=4), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    x = data.draw(arrays(shape, low=-10.0, high=10.0), label="x")
    for largest_ones_product in (1 << 22, -1):  # the BLAS path (small arrays) and NumPy's reduction
        monkeypatch.setattr(nn, "_ONES_PRODUCT_MAX_SIZE", largest_ones_product)
        summed = nn.sum_keepdims(np, x, dim)
        assert summed.shape == x.sum(axis=dim, keepdims=True).shape
        np.testing.assert_allclose(summed, x.sum(axis=dim, keepdims=True), rtol=1e-12, atol=1e-12)


@op_settings
@given(data=st.data())
def test_log_softmax_equals_log_of_softmax(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(axis(len(shape)), label="dim")
    x = tensor(data.draw(arrays(shape, low=-10.0, high=10.0), label="x"), device, tt.float64)
    np.testing.assert_allclose(F.log_softmax(x, dim).numpy(), np.log(F.softmax(x, dim).numpy()), rtol=1e-12,
                               atol=1e-12)


# ---- losses ------------------------------------------------------------------------------------------------------
@st.composite
def classification_batches(draw, min_dims: int = 2):
    """Logits [N, C] or [N, C, d1, …], class ids with some set to ignore_index, and the loss options."""
    n, classes = draw(st.integers(1, 4), label="N"), draw(st.integers(2, 4), label="C")
    extra = tuple(draw(st.lists(st.integers(1, 3), min_size=min_dims - 2, max_size=2), label="d"))
    ignore_index = draw(st.sampled_from([-100, 1]), label="ignore_index")
    reduction = draw(st.sampled_from(["mean", "sum", "none"]), label="reduction")
    targets = draw(index_arrays((n, *extra), classes), label="targets")
    ignored = draw(bool_masks(targets.shape), label="ignored")
    targets = np.where(ignored, ignore_index, targets)
    if reduction == "mean" and (targets == ignore_index).all():
        targets.flat[0] = 0  # a mean over no items is 0/0, as in PyTorch
    logits = draw(arrays((n, classes, *extra), low=-4.0, high=4.0), label="logits")
    return logits, targets, ignore_index, reduction


@op_settings
@given(batch=classification_batches(), label_smoothing=st.sampled_from([0.0, 0.1, 0.3]))
def test_cross_entropy_matches_the_manual_formula_and_finite_differences(device, batch, label_smoothing):
    logits, targets, ignore_index, reduction = batch
    target_tensor = tensor(targets, device)
    options = {"ignore_index": ignore_index, "reduction": reduction, "label_smoothing": label_smoothing}
    check_op(lambda x: F.cross_entropy(x, target_tensor, **options),
             lambda x: np_cross_entropy(x, targets, **options), logits, device=device)


@op_settings
@given(batch=classification_batches(), label_smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_ignores_ignored_targets(device, batch, label_smoothing):
    logits, targets, ignore_index, reduction = batch
    ignored = np.broadcast_to(np.expand_dims(targets == ignore_index, 1), logits.shape)  # [N, C, d…] like logits
    changed = np.where(ignored, logits * 3.0 + 7.0, logits)
    options = {"ignore_index": ignore_index, "reduction": reduction, "label_smoothing": label_smoothing}
    x = tensor(logits, device, tt.float64, requires_grad=True)
    loss = F.cross_entropy(x, tensor(targets, device), **options)
    loss_changed = F.cross_entropy(tensor(changed, device, tt.float64), tensor(targets, device), **options)
    np.testing.assert_array_equal(loss.numpy(), loss_changed.numpy())
    loss.backward(tt.ones_like(loss))
    assert (x.grad.numpy()[ignored] == 0).all()
    if reduction == "none":
        assert (loss.numpy()[targets == ignore_index] == 0).all()


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_a_mean_over_only_ignored_targets_is_nan_with_a_zero_gradient_as_in_pytorch(device, loss):
    x = tensor(np.array([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3]]), device, tt.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyTorch is silent about this 0/0, and so are we
        value = getattr(F, loss)(x, tensor(np.array([-100, -100]), device))
        value.backward()
    assert np.isnan(value.item())
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3)))


def test_cross_entropy_of_a_single_unbatched_row_matches_the_formula():
    logits = np.array([0.5, -1.0, 2.0])
    check_op(lambda x: F.cross_entropy(x, tt.tensor(2)), lambda x: -np_log_softmax(x)[2], logits)


@op_settings
@given(batch=classification_batches())
def test_nll_loss_matches_numpy_and_finite_differences(device, batch):
    log_probs, targets, ignore_index, reduction = batch
    target_tensor = tensor(targets, device)
    options = {"ignore_index": ignore_index, "reduction": reduction}
    check_op(lambda x: F.nll_loss(x, target_tensor, **options), lambda x: np_nll_loss(x, targets, **options),
             log_probs, device=device)


def test_nll_loss_of_log_softmax_equals_cross_entropy():
    logits = np.random.default_rng(0).standard_normal((5, 4))
    targets = tt.tensor([0, 3, -100, 1, 1])
    x = tt.tensor(logits, dtype=tt.float64)
    np.testing.assert_allclose(F.nll_loss(F.log_softmax(x, 1), targets).item(), F.cross_entropy(x, targets).item(),
                               rtol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@op_settings
@given(data=st.data())
def test_mse_loss_matches_numpy_and_finite_differences_in_both_arguments(reduction, device, data):
    shape = data.draw(shapes(max_dims=3), label="shape")
    prediction, target = data.draw(arrays(shape), label="prediction"), data.draw(arrays(shape), label="target")
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    check_op(lambda p, t: F.mse_loss(p, t, reduction=reduction), lambda p, t: reduce((p - t) ** 2), prediction,
             target, device=device)


# ---- normalisation -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", ["none", "weight", "weight_and_bias", "bias"])
@op_settings
@given(data=st.data())
def test_layer_norm_gradient_matches_finite_differences(affine, device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=2), label="shape")
    features = shape[-1]
    x = data.draw(arrays(shape), label="x")
    weight = data.draw(arrays((features,)), label="weight")
    bias = data.draw(arrays((features,)), label="bias")
    eps = data.draw(st.sampled_from([1e-5, 1e-2]), label="eps")
    # float32 rounding of the row mean (~1e-7·|x|) is amplified by 1/√(σ² + eps), up to 1/√eps for a flat row
    float32 = {"atol32": 1e-6 / math.sqrt(eps) * 4}
    if affine == "none":
        check_op(lambda x: F.layer_norm(x, (features,), eps=eps), lambda x: np_layer_norm(x, eps=eps), x,
                 device=device, **float32)
    elif affine == "weight":
        check_op(lambda x, w: F.layer_norm(x, (features,), w, eps=eps), lambda x, w: np_layer_norm(x, w, eps=eps),
                 x, weight, device=device, **float32)
    elif affine == "weight_and_bias":
        check_op(lambda x, w, b: F.layer_norm(x, features, w, b, eps), lambda x, w, b: np_layer_norm(x, w, b, eps),
                 x, weight, bias, device=device, **float32)
    else:
        check_op(lambda x, b: F.layer_norm(x, [features], bias=b, eps=eps),
                 lambda x, b: np_layer_norm(x, bias=b, eps=eps), x, bias, device=device, **float32)


@op_settings
@given(data=st.data())
def test_layer_norm_output_has_zero_mean_and_unit_variance(device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, min_side=2), label="shape")
    x = tensor(data.draw(distinct_arrays(shape, center=data.draw(st.floats(-50, 50))), label="x"), device,
               tt.float64)
    out = F.layer_norm(x, shape[-1], eps=1e-12).numpy()
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=-1), 1.0, rtol=1e-9)


@pytest.mark.parametrize("with_weight", [False, True])
@op_settings
@given(data=st.data())
def test_rms_norm_matches_numpy_and_finite_differences(with_weight, device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    x = data.draw(arrays(shape, away_from=(0.0,), margin=0.2), label="x")
    eps = data.draw(st.sampled_from([1e-6, 1e-2]), label="eps")
    if with_weight:
        weight = data.draw(arrays(shape[-1:]), label="weight")
        check_op(lambda x, w: F.rms_norm(x, shape[-1:], w, eps), lambda x, w: np_rms_norm(x, w, eps), x, weight,
                 device=device)
    else:
        check_op(lambda x: F.rms_norm(x, shape[-1], eps=eps), lambda x: np_rms_norm(x, eps=eps), x, device=device)


@pytest.mark.parametrize("affine", [False, True])
@op_settings
@given(data=st.data())
def test_norms_over_several_trailing_axes_match_numpy_and_finite_differences(affine, device, data):
    shape = data.draw(shapes(min_dims=2, max_dims=3, min_side=2), label="shape")
    n_axes = data.draw(st.integers(2, len(shape)), label="n_axes")
    normalized_shape = shape[len(shape) - n_axes:]
    x = data.draw(arrays(shape, away_from=(0.0,), margin=0.2), label="x")
    weight = data.draw(arrays(normalized_shape), label="weight")
    bias = data.draw(arrays(normalized_shape), label="bias")
    if affine:
        check_op(lambda x, w, b: F.layer_norm(x, normalized_shape, w, b),
                 lambda x, w, b: np_layer_norm(x, w, b, n_axes=n_axes), x, weight, bias, device=device, atol32=1e-4)
        check_op(lambda x, w: F.rms_norm(x, list(normalized_shape), w), lambda x, w: np_rms_norm(x, w, n_axes=n_axes),
                 x, weight, device=device)
    else:
        check_op(lambda x: F.layer_norm(x, normalized_shape), lambda x: np_layer_norm(x, n_axes=n_axes), x,
                 device=device, atol32=1e-4)
        check_op(lambda x: F.rms_norm(x, normalized_shape), lambda x: np_rms_norm(x, n_axes=n_axes), x, device=device)


def test_norm_over_several_axes_names_the_shapes_that_disagree():
    x = tt.ones(2, 3, 4)
    with pytest.raises(ValueError, match=r"normalized_shape \(2, 4\).*last 2 axes.*got input \(2, 3, 4\)"):
        F.layer_norm(x, (2, 4))
    with pytest.raises(ValueError, match=r"got input \(2, 3, 4\) and weight \(12,\)"):
        F.rms_norm(x, (3, 4), tt.ones(12))


@pytest.mark.parametrize("op", [F.softmax, F.log_softmax, F.gelu, F.silu, lambda x: F.layer_norm(x, 3),
                                lambda x: F.rms_norm(x, 3), lambda x: F.cross_entropy(x, [0, 1])])
def test_ops_that_need_floating_input_name_themselves_and_the_dtype(op):
    with pytest.raises(TypeError, match=r"^\w+: needs a floating-point input, got dtype int64"):
        op(tt.tensor([[1, 2, 3], [4, 5, 6]]))


# ---- dropout -----------------------------------------------------------------------------------------------------
@op_settings
@given(data=st.data())
def test_dropout_with_a_fixed_seed_has_the_gradient_of_its_mask(device, data):
    shape = data.draw(shapes(max_dims=3), label="shape")
    p = data.draw(st.sampled_from([0.1, 0.5, 0.9]), label="p")
    x = data.draw(arrays(shape), label="x")
    check_gradient(seeded(lambda x: F.dropout(x, p)), x, device=device)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_zeroes_about_p_of_the_elements_and_scales_the_rest_by_one_over_one_minus_p(p, device):
    x = tt.ones(200_000, dtype=tt.float64, device=device)
    out = F.dropout(x, p).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / (1 - p), rtol=1e-15)
    assert abs((~kept).mean() - p) < 0.01


def test_dropout_is_the_identity_in_eval_mode_or_at_p_zero_and_reproducible_under_a_seed():
    x = tt.randn(4, 5, dtype=tt.float64)
    assert F.dropout(x, 0.5, training=False) is x and F.dropout(x, 0.0) is x
    tt.manual_seed(3)
    first = F.dropout(x, 0.5).numpy()
    second = F.dropout(x, 0.5).numpy()
    tt.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), first)
    assert not np.array_equal(first, second)


# ---- embedding ---------------------------------------------------------------------------------------------------
@op_settings
@given(data=st.data())
def test_embedding_gradient_matches_finite_differences_with_repeated_ids(device, data):
    vocab, features = data.draw(st.integers(1, 5), label="vocab"), data.draw(st.integers(1, 3), label="features")
    ids = data.draw(index_arrays(data.draw(shapes(min_dims=0, max_dims=2), label="ids_shape"), vocab), label="ids")
    weight = data.draw(arrays((vocab, features)), label="weight")
    id_tensor = tensor(ids, device)
    check_op(lambda w: F.embedding(id_tensor, w), lambda w: w[ids], weight, device=device)


@op_settings
@given(data=st.data())
def test_embedding_padding_row_gets_zero_gradient_and_other_rows_get_the_sum_of_their_uses(device, data):
    vocab = data.draw(st.integers(2, 5), label="vocab")
    ids = data.draw(index_arrays(data.draw(shapes(min_dims=1, max_dims=2), label="ids_shape"), vocab), label="ids")
    padding_idx = data.draw(st.integers(-vocab, vocab - 1), label="padding_idx")
    weight_values = data.draw(arrays((vocab, 3)), label="weight")
    upstream = data.draw(arrays((*ids.shape, 3)), label="upstream")
    weight = tensor(weight_values, device, tt.float64, requires_grad=True)
    out = F.embedding(tensor(ids, device), weight, padding_idx=padding_idx)
    np.testing.assert_array_equal(out.numpy(), weight_values[ids])
    out.backward(tensor(upstream, device, tt.float64))
    expected = np.zeros((vocab, 3))
    np.add.at(expected, ids.reshape(-1), upstream.reshape(-1, 3))
    expected[padding_idx] = 0.0
    np.testing.assert_allclose(weight.grad.numpy(), expected, rtol=1e-14, atol=1e-14)


# ---- attention ---------------------------------------------------------------------------------------------------
@st.composite
def attention_inputs(draw, mask_kinds=("none", "bool", "additive", "both")):
    """q [*lead, H, Tq, d], k and v [*lead, Hkv, Tk, d] (H = G·Hkv), and a mask broadcastable to the scores."""
    lead = tuple(draw(st.lists(st.integers(1, 2), max_size=1), label="lead"))
    kv_heads, groups = draw(st.integers(1, 2), label="Hkv"), draw(st.integers(1, 2), label="G")
    q_len, k_len, head_dim = (draw(st.integers(1, 3), label=n) for n in ("Tq", "Tk", "d"))
    heads = kv_heads * groups
    q = draw(arrays((*lead, heads, q_len, head_dim)), label="q")
    k = draw(arrays((*lead, kv_heads, k_len, head_dim)), label="k")
    v = draw(arrays((*lead, kv_heads, k_len, head_dim)), label="v")
    mask_shape = draw(st.sampled_from([(q_len, k_len), (heads, q_len, k_len), (*lead, 1, q_len, k_len),
                                       (*lead, heads, q_len, k_len), (*lead, 1, 1, k_len)]), label="mask_shape")
    kind = draw(st.sampled_from(mask_kinds), label="mask_kind")
    keep = draw(bool_masks(mask_shape), label="keep") if kind in ("bool", "both") else None
    bias = draw(arrays(mask_shape), label="bias") if kind in ("additive", "both") else None
    return q, k, v, keep, bias


def _attention_call(keep, bias, device, **options):
    """F.scaled_dot_product_attention with one mask argument: boolean, additive, or additive holding −100 where
    the boolean mask says no (how a model folds a padding mask into a bias; −100 stays exact in float32)."""
    if keep is not None and bias is not None:
        mask = tensor(np.where(keep, bias, -100.0), device, tt.float64)
    else:
        mask = tensor(keep, device) if keep is not None else tensor(bias, device) if bias is not None else None
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **options)


@scaled_examples(1.5)
@given(inputs=attention_inputs(), is_causal=st.booleans())
def test_attention_matches_naive_numpy_and_finite_differences_with_masks_and_grouped_heads(device, inputs,
                                                                                           is_causal):
    q, k, v, keep, bias = inputs
    combined_bias = None if bias is None else (np.where(keep, bias, -100.0) if keep is not None else bias)
    check_op(_attention_call(keep, bias, device, is_causal=is_causal),
             lambda q, k, v: np_attention(q, k, v, keep if bias is None else None, combined_bias, is_causal),
             q, k, v, device=device)


@pytest.mark.parametrize("mask_kind", ["bool", "additive"])
def test_grouped_query_heads_use_their_own_key_value_head_and_their_own_mask_row(mask_kind, device):
    """H = 4 query heads over Hkv = 2 key/value heads: head h reads kv head h // 2 (HF's repeat_kv order)."""
    rng = np.random.default_rng(5)
    q, k, v = rng.standard_normal((2, 4, 3, 2)), rng.standard_normal((2, 2, 3, 2)), rng.standard_normal((2, 2, 3, 2))
    keep = rng.random((2, 4, 3, 3)) > 0.4
    keep[..., 0] = True
    bias = rng.standard_normal((4, 3, 3))
    mask = (keep, None) if mask_kind == "bool" else (None, bias)
    check_op(_attention_call(*mask, device), lambda q, k, v: np_attention(q, k, v, *mask), q, k, v, device=device)


@op_settings
@given(inputs=attention_inputs(mask_kinds=("none", "bool")), is_causal=st.booleans(),
       p=st.sampled_from([0.25, 0.6]))
def test_attention_with_dropout_and_a_fixed_seed_matches_finite_differences(device, inputs, is_causal, p):
    q, k, v, keep, _ = inputs
    check_gradient(seeded(_attention_call(keep, None, device, is_causal=is_causal, dropout_p=p)), q, k, v,
                   device=device)


def test_attention_dropout_zeroes_probabilities_and_rescales_the_survivors():
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((2, 3, 6, 6))
    identity = np.broadcast_to(np.eye(6), (2, 3, 6, 6)).copy()  # with v = I the output is the attention matrix
    attended = F.scaled_dot_product_attention(*(tt.tensor(a) for a in (q, k, identity)), dropout_p=0.5).numpy()
    probs = np_attention(q, k, identity)
    dropped = attended == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(attended[~dropped], probs[~dropped] / 0.5, rtol=1e-12)


@op_settings
@given(data=st.data())
def test_causal_attention_output_at_position_t_ignores_tokens_after_t(device, data):
    heads, length, head_dim = (data.draw(st.integers(1, 3), label=n) for n in ("H", "T", "d"))
    t = data.draw(st.integers(0, length - 1), label="t")
    q, k, v = (data.draw(arrays((2, heads, length, head_dim)), label=n) for n in "qkv")
    k_new, v_new, q_new = k.copy(), v.copy(), q.copy()
    for array, name in ((k_new, "k_future"), (v_new, "v_future"), (q_new, "q_future")):
        array[..., t + 1:, :] = data.draw(arrays(array[..., t + 1:, :].shape, low=-50.0, high=50.0), label=name)

    def attend(q, k, v):
        return F.scaled_dot_product_attention(*(tensor(a, device, tt.float64) for a in (q, k, v)),
                                              is_causal=True).numpy()

    np.testing.assert_allclose(attend(q_new, k_new, v_new)[..., : t + 1, :], attend(q, k, v)[..., : t + 1, :],
                               rtol=1e-12, atol=1e-12)


def test_attention_row_that_sees_no_key_attends_uniformly_instead_of_producing_nan():
    v = np.arange(6.0).reshape(1, 1, 3, 2)
    keep = np.array([[False, False, False], [True, False, False]])
    out = F.scaled_dot_product_attention(tt.tensor(np.ones((1, 1, 2, 2))), tt.tensor(np.ones((1, 1, 3, 2))),
                                         tt.tensor(v), attn_mask=tt.tensor(keep)).numpy()
    np.testing.assert_allclose(out[0, 0], [v[0, 0].mean(axis=0), v[0, 0, 0]], rtol=1e-15)


def test_attention_with_an_explicit_scale_matches_numpy():
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((1, 1, 3, 4)), rng.standard_normal((1, 1, 3, 4))
    check_forward(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3, is_causal=True),
                  lambda q, k, v: np_attention(q, k, v, is_causal=True, scale=0.3), q, k, v)


# ---- packed self-attention (fused qkv in, merged heads out) ---------------------------------------------------------
@op_settings
@given(batch=st.integers(1, 2), time=st.integers(1, 4), heads=st.integers(1, 3), head_dim=st.integers(1, 3),
       is_causal=st.booleans(), masked=st.booleans(), data=st.data())
def test_packed_self_attention_equals_split_heads_attention_and_finite_differences(device, batch, time, heads,
                                                                                  head_dim, is_causal, masked, data):
    width = heads * head_dim
    qkv = data.draw(arrays((batch, time, 3 * width)))
    keep = data.draw(arrays((batch, 1, 1, time), low=0, high=1)) > 0.3 if masked else None
    mask = tt.tensor(keep).to(device) if masked else None

    def split_heads(packed):
        q, k, v = (packed[..., i * width:(i + 1) * width].reshape(batch, time, heads, head_dim).transpose(1, 2)
                   for i in range(3))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        return out.transpose(1, 2).reshape(batch, time, width)

    def packed(tensor):
        return F.packed_self_attention(tensor, heads, attn_mask=mask, is_causal=is_causal)

    x = tt.tensor(qkv, dtype=tt.float64, device=device, requires_grad=True)
    np.testing.assert_allclose(packed(x).numpy(), split_heads(x).numpy(), rtol=1e-12, atol=1e-12)
    assert tt.gradcheck(packed, [x])
    assert packed(x.detach().float()).dtype == tt.float32


def test_packed_self_attention_rejects_a_width_that_is_not_three_heads():
    with pytest.raises(ValueError, match="packed_self_attention"):
        F.packed_self_attention(tt.zeros(1, 2, 10), 2)


# ---- fused linear ---------------------------------------------------------------------------------------------------
@op_settings
@given(lead=shapes(min_dims=0, max_dims=2), features=st.integers(1, 4), outputs=st.integers(1, 4),
       with_bias=st.booleans(), data=st.data())
def test_linear_matches_numpy_and_finite_differences(device, lead, features, outputs, with_bias, data):
    x = data.draw(arrays((*lead, features)))
    weight = data.draw(arrays((outputs, features)))
    bias = data.draw(arrays((outputs,)))
    arrays_in = [x, weight, bias] if with_bias else [x, weight]
    inputs = [tt.tensor(a, device=device, requires_grad=True) for a in arrays_in]
    expected = x @ weight.T + (bias if with_bias else 0)
    np.testing.assert_allclose(F.linear(*inputs).numpy(), expected, rtol=1e-12, atol=1e-12)
    assert tt.gradcheck(F.linear, inputs)


def test_linear_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"linear: input \(2, 3\) does not fit weight \(4, 5\)"):
        F.linear(tt.zeros(2, 3), tt.zeros(4, 5))


def test_embedding_gradient_is_the_same_by_one_hot_product_and_by_scatter(monkeypatch):
    from tinytensor.ops.nn import Embedding

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, (3, 5))  # repeats guaranteed
    upstream = rng.standard_normal((3, 5, 4))

    def weight_grad():
        weight = tt.tensor(np.ones((7, 4)), requires_grad=True)
        (F.embedding(ids, weight, padding_idx=2) * tt.tensor(upstream)).sum().backward()
        return weight.grad.numpy()

    by_product = weight_grad()
    monkeypatch.setattr(Embedding, "ONE_HOT_LIMIT", 0)
    by_scatter = weight_grad()
    expected = np.zeros((7, 4))
    np.add.at(expected, ids.reshape(-1), upstream.reshape(-1, 4))
    expected[2] = 0
    np.testing.assert_allclose(by_product, expected, rtol=1e-12)
    np.testing.assert_allclose(by_scatter, expected, rtol=1e-12)


# ---- normalize and one_hot ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
@op_settings
@given(data=st.data())
def test_normalize_matches_numpy_and_finite_differences(p, device, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3), label="shape")
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    x = data.draw(arrays(shape, away_from=(0.0,), margin=0.1), label="x")

    def reference(x):
        return x / np.maximum(np.sum(np.abs(x) ** p, axis=dim, keepdims=True) ** (1 / p), 1e-12)

    check_op(lambda x: F.normalize(x, p, dim), reference, x, device=device)


def test_normalize_leaves_a_zero_vector_at_zero():
    out = F.normalize(tt.zeros(2, 3), dim=-1)
    np.testing.assert_array_equal(out.numpy(), np.zeros((2, 3)))


def test_one_hot_matches_pytorch_including_the_inferred_class_count():
    ids = tt.tensor([[0, 2], [1, 2]])
    assert F.one_hot(ids).tolist() == [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [0, 0, 1]]]
    assert F.one_hot(ids, num_classes=4).shape == (2, 2, 4) and F.one_hot(ids).dtype == tt.int64
    with pytest.raises(IndexError, match=r"one_hot: class ids must lie in \[0, 2\)"):
        F.one_hot(ids, 2)
