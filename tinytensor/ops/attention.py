"""Attention as fused ops: scaled dot-product attention (grouped-query heads, boolean or additive masks, causal,
dropout) and multi-head self-attention straight from a fused qkv projection.

softmax(q·kᵀ/√d + mask)·v is one `Function` whose backward reuses the saved probabilities, so no [T, T] temporary
beyond the probabilities themselves is kept for backward. `_attend`/`_attend_backward` hold the maths once for
both ops.
"""
from __future__ import annotations

import contextlib
import math

from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops import composed
from tinytensor.ops._util import require_floating
from tinytensor.ops.nn import dropout_mask, stable_softmax
from tinytensor.tensor import Tensor


class ScaledDotProductAttention(Function):
    """softmax(q·kᵀ·scale + mask)·v (Vaswani et al. 2017, eq. 1), fused, with grouped-query heads.

    Shapes: q [..., H, Tq, d], k and v [..., Hkv, Tk, d] with H a multiple of Hkv. Query heads are grouped as
    [..., Hkv, G, Tq, d] so each key/value head serves its G query heads by broadcasting: no repeated copies.
    `keep` is a boolean mask (True = may attend) and `bias` an additive float mask, each broadcastable to
    [..., H, Tq, Tk]. The maths lives in `_attend` and `_attend_backward`, shared with `PackedSelfAttention`.
    """

    def forward(self, q, k, v, keep=None, bias=None, scale=1.0, dropout_p=0.0):
        *lead, heads, q_len, head_dim = q.shape
        kv_heads = k.shape[-3]
        self.q_shape, self.scale, self.masks = q.shape, scale, (keep, bias)
        q5 = q.reshape(*lead, kv_heads, heads // kv_heads, q_len, head_dim)
        k5, v5 = k[..., None, :, :], v[..., None, :, :]
        out, saved = _attend(self.xp, q5, k5, v5, keep, bias, scale, dropout_p)
        self.save_for_backward(q5, k5, v5, *saved, q, k, v)  # q, k, v for `composed`
        return out.reshape(q.shape)

    def composed(self, q, k, v):
        return composed.scaled_dot_product_attention(q, k, v, *self.masks, self.scale,
                                                     _dropout_mask_of(self.saved[5], q.shape))

    def backward(self, grad):
        q5, k5, v5, *saved = self.saved[:7]
        grad_q, grad_k, grad_v = _attend_backward(self.xp, grad.reshape(q5.shape), q5, k5, v5, saved, self.scale,
                                                  self.needs_input_grad)
        return (grad_q.reshape(self.q_shape) if grad_q is not None else None,
                grad_k[..., 0, :, :] if grad_k is not None else None,
                grad_v[..., 0, :, :] if grad_v is not None else None)


class PackedSelfAttention(Function):
    """Multi-head self-attention straight from a fused projection: qkv [B, T, 3·H·d] → [B, T, H·d].

    The same maths as `ScaledDotProductAttention`, but heads are split and merged through strided views
    (q, k and v are [B, H, T, d] windows onto qkv; the output is written through a [B, H, T, d] window onto
    [B, T, H·d]), and backward writes dq, dk, dv straight into one [B, T, 3·H·d] gradient. Splitting with
    reshape/permute/indexing ops instead would copy and re-accumulate the whole qkv tensor in backward.
    """

    def forward(self, qkv, num_heads=1, keep=None, bias=None, scale=1.0, dropout_p=0.0):
        xp = self.xp
        batch, time, width = qkv.shape
        self.scale, self.qkv_shape, self.masks = scale, qkv.shape, (keep, bias)
        q5, k5, v5 = _split_packed_heads(qkv, num_heads)
        out = xp.empty((batch, time, width // 3), dtype=qkv.dtype)
        self.lanes = _batch_lanes(xp, q5, keep, bias)
        if self.lanes:
            saved = _attend_in_lanes(xp, self.lanes, q5, k5, v5, keep, scale, dropout_p, _heads_view(out, num_heads))
        else:
            _, saved = _attend(xp, q5, k5, v5, keep, bias, scale, dropout_p, out=_heads_view(out, num_heads))
        self.save_for_backward(qkv, *saved)
        self.num_heads = num_heads
        return out

    def backward(self, grad):
        qkv, *saved = self.saved
        grad_qkv = self.xp.empty(self.qkv_shape, dtype=grad.dtype)
        grad5, (q5, k5, v5) = _heads_view(grad, self.num_heads), _split_packed_heads(qkv, self.num_heads)
        outs = _split_packed_heads(grad_qkv, self.num_heads)
        if self.lanes:
            def lane_backward(lane: slice) -> None:
                lane_saved = [a[lane] if a is not None else None for a in saved[:3]] + [saved[3]]
                _attend_backward(self.xp, grad5[lane], q5[lane], k5[lane], v5[lane], lane_saved, self.scale,
                                 (True, True, True), outs=[o[lane] for o in outs])
            _run_lanes(lane_backward, self.lanes, _matmul_work(q5, k5))
        else:
            _attend_backward(self.xp, grad5, q5, k5, v5, saved, self.scale, (True, True, True), outs=outs)
        return grad_qkv

    def composed(self, qkv):
        batch, time, width = qkv.shape
        mask = _dropout_mask_of(self.saved[3], (batch, self.num_heads, time, width // (3 * self.num_heads)))
        return composed.packed_self_attention(qkv, self.num_heads, *self.masks, self.scale, mask)


def _dropout_mask_of(drop_mask, q_shape: tuple):
    """The dropout mask `_attend` drew (grouped and transposed: [..., Hkv, G, Tk, Tq]) as [..., H, Tq, Tk]."""
    if drop_mask is None:
        return None
    return drop_mask.swapaxes(-1, -2).reshape(*q_shape[:-1], drop_mask.shape[-2])


def _split_packed_heads(qkv, num_heads: int):
    """Views q5, k5, v5 of shape [B, H, 1, T, d] onto qkv [B, T, 3·H·d] (the 1 is the query-group axis)."""
    batch, time, width = qkv.shape
    heads = qkv.reshape(batch, time, 3, num_heads, width // (3 * num_heads)).transpose(2, 0, 3, 1, 4)
    return heads[0][:, :, None], heads[1][:, :, None], heads[2][:, :, None]


def _heads_view(merged, num_heads: int):
    """A [B, H, 1, T, d] view onto merged heads [B, T, H·d]."""
    batch, time, width = merged.shape
    return merged.reshape(batch, time, num_heads, width // num_heads).transpose(0, 2, 1, 3)[:, :, None]


def _attend(xp, q5, k5, v5, keep, bias, scale, dropout_p, out=None, buffers=(None, None, None)):
    """Forward of attention on grouped heads: q5 [..., Hkv, G, Tq, d], k5/v5 [..., Hkv, 1, Tk, d].

    Returns the output [..., Hkv, G, Tq, d] (written into `out` if given) and what backward needs. The scores
    are kept transposed, [..., Tk, Tq] (keys down, queries across), so the softmax's max and sum over keys
    reduce along the second-to-last axis, which NumPy vectorises; along the last axis, short rows of 64 keys
    reduce three times slower. `buffers` (probabilities, dropped probabilities, dropout mask; see
    `_attend_in_lanes`) are where a slice of a bigger batch writes its part, and the mask already drawn.
    """
    probs_out, attended_out, drop_mask = buffers
    scores_t = xp.matmul(k5, q5.swapaxes(-1, -2), out=probs_out)
    scores_t *= scores_t.dtype.type(scale)
    kv_heads, groups = q5.shape[-4], q5.shape[-3]
    if bias is not None:
        scores_t += _group_heads(xp.asarray(bias, dtype=scores_t.dtype), kv_heads, groups).swapaxes(-1, -2)
    if keep is not None:
        keep = _group_heads(keep, kv_heads, groups).swapaxes(-1, -2)
        xp.copyto(scores_t, xp.finfo(scores_t.dtype).min, where=~keep)
        if backend.device_of(scores_t) == "cpu" and bool(keep.any(axis=-2).all()):
            keep = None  # backward needs it only for queries with no key (checked on the CPU: a GPU would sync)
    probs_t = stable_softmax(xp, scores_t, -2, in_place=True)
    attended_t = probs_t
    if dropout_p:
        if drop_mask is None:
            drop_mask = dropout_mask(xp, probs_t.shape, dropout_p, probs_t.dtype, backend.device_of(probs_t))
        attended_t = xp.multiply(probs_t, drop_mask, out=attended_out)
    return xp.matmul(attended_t.swapaxes(-1, -2), v5, out=out), (probs_t, attended_t, drop_mask, keep)


_LANE_MIN_SCORES = 1 << 18  # below this (the tiny GPT: 196k scores) lanes measured slower in a training step


def _batch_lanes(xp, q5, keep, bias) -> list[slice] | None:
    """Slices of the batch, one per free core, when attention is worth spreading over cores: NumPy runs each of
    its many small matmuls and softmax passes on one core (2.2× faster fwd+bwd for the small GPT's layer)."""
    lanes = min(backend.worker_cores(), q5.shape[0])
    scores = q5.size // q5.shape[-1] * q5.shape[-2]
    if (xp is not backend.numpy or lanes < 2 or scores < _LANE_MIN_SCORES or bias is not None
            or (keep is not None and keep.ndim != 2)):
        return None
    bounds = [round(i * q5.shape[0] / lanes) for i in range(lanes + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def _attend_in_lanes(xp, lanes, q5, k5, v5, keep, scale, dropout_p, out5) -> tuple:
    """`_attend` on each slice of the batch at once, with BLAS on one thread (the lanes use the cores). The
    dropout mask is drawn whole first (the same draw as without lanes) and every slice writes into whole
    buffers, so backward gets the same saved arrays either way."""
    probs_t = xp.empty((*q5.shape[:-2], k5.shape[-2], q5.shape[-2]), dtype=q5.dtype)
    drop_mask = attended_t = None
    if dropout_p:
        drop_mask = dropout_mask(xp, probs_t.shape, dropout_p, probs_t.dtype, "cpu")
        attended_t = xp.empty_like(probs_t)
    kept = []

    def lane_forward(lane: slice) -> None:
        buffers = (probs_t[lane], *(a[lane] if a is not None else None for a in (attended_t, drop_mask)))
        kept.append(_attend(xp, q5[lane], k5[lane], v5[lane], keep, None, scale, dropout_p, out=out5[lane],
                            buffers=buffers)[1][3])

    _run_lanes(lane_forward, lanes, _matmul_work(q5, k5))
    return probs_t, attended_t if dropout_p else probs_t, drop_mask, kept[0]


_BLAS_SINGLE_THREAD_WORK = 1 << 18  # OpenBLAS runs a GEMM with M·N·K up to this on one thread anyway


def _run_lanes(function, lanes: list[slice], matmul_work: int) -> None:
    """function(lane) for every lane, on the CPU pool's threads. BLAS is held to one thread meanwhile only where
    its matmuls (M·N·K = `matmul_work`) would otherwise use several: waking parked BLAS threads afterwards costs
    the next GEMMs time, so small attention leaves BLAS alone."""
    with backend.one_blas_thread() if matmul_work > _BLAS_SINGLE_THREAD_WORK else contextlib.nullcontext():
        list(backend.cpu_pool().map(function, lanes))


def _matmul_work(q5, k5) -> int:
    """M·N·K of one head's score matmul: Tk·Tq·d."""
    return k5.shape[-2] * q5.shape[-2] * q5.shape[-1]


def _attend_backward(xp, grad5, q5, k5, v5, saved, scale, needs, outs=(None, None, None)):
    """Gradients of `_attend` (transposed like it): dS = P ⊙ (dP − Σ_keys dP ⊙ P); dq = dS·k, dk = dSᵀ·q
    summed over query groups, dv = Pᵀ·dout."""
    probs_t, attended_t, drop_mask, keep = saved
    d_attended_t = xp.matmul(v5, grad5.swapaxes(-1, -2))
    grad_v = _matmul_summing_groups(xp, attended_t, grad5, outs[2]) if needs[2] else None
    if drop_mask is not None:
        d_attended_t *= drop_mask
    d_scores_t = d_attended_t
    d_scores_t -= xp.einsum("...ji,...ji->...i", d_attended_t, probs_t)[..., None, :]
    d_scores_t *= probs_t
    if keep is not None:  # a query that sees no key is uniform whatever its scores: masked scores get no gradient
        d_scores_t *= keep
    d_scores_t *= d_scores_t.dtype.type(scale)
    grad_q = xp.matmul(d_scores_t.swapaxes(-1, -2), k5, out=outs[0]) if needs[0] else None
    grad_k = _matmul_summing_groups(xp, d_scores_t, q5, outs[1]) if needs[1] else None
    return grad_q, grad_k, grad_v


def _matmul_summing_groups(xp, a, b, out=None):
    """a·b for a key/value gradient, [..., Hkv, G, Tk, d], summed over its G query heads (keeping the axis) and
    written into `out` if given; with one query head per key/value head the product goes straight there."""
    if a.shape[-3] == 1:
        return xp.matmul(a, b, out=out)
    return xp.sum(xp.matmul(a, b), axis=-3, keepdims=True, out=out)


def _group_heads(mask, kv_heads: int, groups: int):
    """Reshape a mask broadcastable to [..., H, Tq, Tk] into [..., Hkv, G, Tq, Tk]."""
    if mask.ndim < 3 or mask.shape[-3] == 1:
        return mask[..., None, :, :]
    return mask.reshape(*mask.shape[:-3], kv_heads, groups, *mask.shape[-2:])


def _attention_masks(xp, attn_mask, is_causal: bool, q_len: int, k_len: int):
    """Split a user mask into a boolean `keep` (True = attend) and an additive float `bias`; add causality."""
    keep = bias = None
    if attn_mask is not None:
        mask_array = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
        if mask_array.dtype == backend.bool_:
            keep = mask_array
        else:
            bias = mask_array
    if is_causal:
        causal = causal_keep_mask(xp, q_len, k_len)
        keep = causal if keep is None else keep & causal
    return keep, bias


def causal_keep_mask(xp, q_len: int, k_len: int):
    """[Tq, Tk] booleans, True where query i may see key j: j ≤ i + (Tk − Tq), aligned at the bottom right so
    the last query sees every key (what incremental decoding with a key/value cache needs)."""
    return xp.tri(q_len, k_len, k=k_len - q_len, dtype=bool)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = True) -> Tensor:
    """PyTorch's F.scaled_dot_product_attention: q [..., H, Tq, d], k/v [..., Hkv, Tk, d] → [..., H, Tq, d].

    `attn_mask` is boolean (True = attend) or additive float. With `is_causal`, query i sees keys up to
    i + Tk − Tq (bottom-right aligned; identical to PyTorch when Tq == Tk). A row with no visible key attends
    uniformly instead of producing NaN. Pass dropout_p only while training.
    """
    require_floating("scaled_dot_product_attention", query)
    _check_attention_shapes(query, key, value)
    keep, bias = _attention_masks(query.xp, attn_mask, is_causal, query.shape[-2], key.shape[-2])
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    return ScaledDotProductAttention.apply(query, key, value, keep=keep, bias=bias, scale=scale,
                                           dropout_p=dropout_p)


def packed_self_attention(qkv: Tensor, num_heads: int, attn_mask=None, dropout_p: float = 0.0,
                          is_causal: bool = False, scale: float | None = None) -> Tensor:
    """Multi-head self-attention on a fused projection: qkv [B, T, 3·C] (q, k, v side by side, each C = H·d wide,
    head h owning features [h·d, (h+1)·d) as in GPT-2's c_attn) → [B, T, C] with the heads merged back.

    Equivalent to splitting q, k, v, moving heads forward ([B, H, T, d]), calling `scaled_dot_product_attention`
    and merging the heads, but without the copies those reshapes cost in backward.
    """
    require_floating("packed_self_attention", qkv)
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * num_heads):
        raise ValueError(f"packed_self_attention: qkv {qkv.shape} must be [B, T, 3·H·d] with H = {num_heads}")
    time, head_dim = qkv.shape[1], qkv.shape[-1] // (3 * num_heads)
    keep, bias = _attention_masks(qkv.xp, attn_mask, is_causal, time, time)
    scale = 1 / math.sqrt(head_dim) if scale is None else scale
    return PackedSelfAttention.apply(qkv, num_heads=num_heads, keep=keep, bias=bias, scale=scale,
                                     dropout_p=dropout_p)


def _check_attention_shapes(query: Tensor, key: Tensor, value: Tensor) -> None:
    if query.ndim < 3 or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"scaled_dot_product_attention: expected [..., heads, T, d] inputs, got query "
                         f"{query.shape}, key {key.shape}, value {value.shape}")
    if key.shape != value.shape or key.shape[-1] != query.shape[-1] or query.shape[-3] % key.shape[-3]:
        raise ValueError(f"scaled_dot_product_attention: query {query.shape}, key {key.shape} and value "
                         f"{value.shape} do not fit (head dims must agree and heads must divide evenly)")
