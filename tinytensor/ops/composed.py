"""The fused ops written plainly: each one a few lines of primitive ops. Read these first.

`ops/nn.py`, `ops/activation.py`, `ops/linalg.py` and `ops/attention.py` compute the same functions as single
fused `Function`s with hand-derived backward passes, because that is fast (few passes over memory, little saved).
The versions here say what those ops *are*; the tests prove each equal to its fused twin, forward and backward.
They also serve the engine: under `create_graph=True` a fused op is differentiated through its plain version here
(`Function.graph_backward`), so second derivatives need no second hand-derived formula.

Shapes follow the fused ops: logits [N, C] and class ids [N] for cross-entropy; q [..., H, Tq, d] and
k, v [..., Hkv, Tk, d] for attention, H a multiple of Hkv; images [N, C, H, W] for convolution and pooling, whose
`windows` (`ops.conv.Windows`) say where each kernel position meets the padded input.
"""
from __future__ import annotations

import functools
import math

from tinytensor.ops.activation import erf
from tinytensor.ops.elementwise import exp, isfinite, log, masked_fill, mul, rsqrt, sigmoid, tanh, where
from tinytensor.ops.linalg import einsum, matmul
from tinytensor.ops.reduce import amax
from tinytensor.ops.shape import gather, pad, permute, reshape, stack
from tinytensor.tensor import Tensor


# ---- softmax family and cross-entropy -------------------------------------------------------------------------------
def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x − max) / Σ exp(x − max); the max only keeps exp finite (it cancels), so it is a constant."""
    exps = exp(x - amax(x, dim, keepdim=True).detach())
    return exps / exps.sum(dim, keepdim=True)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """(x − max) − log Σ exp(x − max)."""
    shifted = x - amax(x, dim, keepdim=True).detach()
    return shifted - log(exp(shifted).sum(dim, keepdim=True))


def logsumexp(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """log Σ exp(x − max) + max, the max a constant as in softmax (a row of −inf keeps a shift of 0)."""
    shift = amax(x, dim, keepdim=True).detach()
    shift = where(isfinite(shift), shift, 0.0)
    out = log(exp(x - shift).sum(dim, keepdim=True)) + shift
    return out if keepdim else out.squeeze(dim) if dim is not None else out.reshape(())


def cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """−log p[target] per row of logits [N, C], mixed with ε·mean_c(−log p_c) by label smoothing; ignored rows
    give 0 and do not count towards the mean."""
    targets = targets if isinstance(targets, Tensor) else Tensor(targets)
    log_probs = log_softmax(logits, 1)
    valid = targets != ignore_index
    picked = gather(log_probs, 1, where(valid, targets, 0).reshape(-1, 1).data).reshape(-1)
    per_item = (1 - label_smoothing) * -picked
    if label_smoothing:
        per_item = per_item - label_smoothing * log_probs.mean(1)
    per_item = where(valid, per_item, 0.0)
    if reduction == "none":
        return per_item
    total = per_item.sum()
    return total if reduction == "sum" else total / valid.data.sum(dtype=logits.dtype)


# ---- reductions ---------------------------------------------------------------------------------------------------
def prod(x: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """The factors along `dim` multiplied one by one: no division, so zeros need no care."""
    out = functools.reduce(mul, x.split(1, dim))
    return out if keepdim else out.squeeze(dim)


# ---- normalisation ------------------------------------------------------------------------------------------------
def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """(x − mean) / √(var + eps)·w + b over the last axis (var biased)."""
    centered = x - x.mean(-1, keepdim=True)
    out = centered * rsqrt((centered * centered).mean(-1, keepdim=True) + eps)
    out = out * weight if weight is not None else out
    return out + bias if bias is not None else out


def rms_norm(x: Tensor, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """x / √(mean(x²) + eps)·w over the last axis."""
    out = x * rsqrt((x * x).mean(-1, keepdim=True) + eps)
    return out * weight if weight is not None else out


# ---- activations, dropout, embedding, linear -------------------------------------------------------------------------
def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x·Φ(x), Φ(x) = (1 + erf(x/√2))/2; or GPT-2's (1 + tanh(√(2/π)·(x + 0.044715·x³)))/2 for Φ."""
    if approximate == "tanh":
        return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


def silu(x: Tensor) -> Tensor:
    return x * sigmoid(x)


def dropout(x: Tensor, mask) -> Tensor:
    """x times a {0, 1/(1−p)} mask (the fused op draws it; here it is given, so the result is reproducible)."""
    return x * mask


def embedding(ids, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of weight; the padding row's lookups pass no gradient to it."""
    ids = ids.data if isinstance(ids, Tensor) else ids
    rows = weight[ids]
    return rows if padding_idx is None else where((ids == padding_idx)[..., None], rows.detach(), rows)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    out = matmul(x, weight.T)
    return out + bias if bias is not None else out


# ---- attention ----------------------------------------------------------------------------------------------------
def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, keep=None, bias=None, scale: float = 1.0,
                                 dropout_mask=None) -> Tensor:
    """softmax(q·kᵀ·scale + bias, masked where `keep` is False)·v. Each key/value head serves H/Hkv query heads:
    q is grouped as [..., Hkv, G, Tq, d] against k, v as [..., Hkv, 1, Tk, d]. Masks and `dropout_mask` broadcast
    to [..., H, Tq, Tk]. A query that may see no key attends uniformly (every score is the same minimum)."""
    *lead, heads, q_len, head_dim = q.shape
    kv_heads, k_len = k.shape[-3], k.shape[-2]
    q5 = reshape(q, *lead, kv_heads, heads // kv_heads, q_len, head_dim)
    scores = matmul(q5, k.unsqueeze(-3).swapaxes(-1, -2)) * scale
    scores = reshape(scores, *lead, heads, q_len, k_len)
    if bias is not None:  # a constant, taking the scores' dtype as the fused op does
        scores = scores + scores.xp.asarray(bias.data if isinstance(bias, Tensor) else bias, dtype=scores.dtype)
    if keep is not None:
        keep = keep.data if isinstance(keep, Tensor) else keep
        scores = masked_fill(scores, ~keep, float(scores.xp.finfo(scores.dtype).min))
    probs = softmax(scores, -1)
    if dropout_mask is not None:
        probs = probs * dropout_mask
    out = matmul(reshape(probs, *lead, kv_heads, heads // kv_heads, q_len, k_len), v.unsqueeze(-3))
    return reshape(out, *q.shape)


def packed_self_attention(qkv: Tensor, num_heads: int, keep=None, bias=None, scale: float = 1.0,
                          dropout_mask=None) -> Tensor:
    """qkv [B, T, 3·H·d] → q, k, v [B, H, T, d] → attention → heads merged back to [B, T, H·d]."""
    batch, time, width = qkv.shape
    heads = permute(reshape(qkv, batch, time, 3, num_heads, width // (3 * num_heads)), 2, 0, 3, 1, 4)
    out = scaled_dot_product_attention(heads[0], heads[1], heads[2], keep, bias, scale, dropout_mask)
    return reshape(out.transpose(1, 2), batch, time, width // 3)


# ---- convolution, pooling, batch norm ------------------------------------------------------------------------------
def _padded(x: Tensor, windows, value: float = 0.0) -> Tensor:
    (top, bottom), (left, right) = windows.padding
    return pad(x, (left, right, top, bottom), value)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, windows, groups: int = 1) -> Tensor:
    """Σ over kernel positions (i, j) of the input slice that (i, j) meets times w[:, :, i, j], group by group:
    out[n, g, o] = Σ_c patch[n, g, c]·w[g, o, c, i, j], plus the bias."""
    padded = _padded(x, windows)
    batch, channels = x.shape[:2]
    out_size = windows.output_size(*x.shape[2:])
    grouped = reshape(weight, groups, weight.shape[0] // groups, channels // groups, *windows.kernel)
    out = None
    for i, j in windows.positions():
        patch = reshape(padded[windows.at(i, j, out_size)], batch, groups, channels // groups, *out_size)
        term = einsum("ngcyx,goc->ngoyx", patch, grouped[:, :, :, i, j])
        out = term if out is None else out + term
    out = reshape(out, batch, weight.shape[0], *out_size)
    return out + reshape(bias, 1, -1, 1, 1) if bias is not None else out


def _window_slices(x: Tensor, windows, value: float = 0.0) -> list[Tensor]:
    """For each kernel position, the slice of the padded input it meets: [N, C, OH, OW] each."""
    padded = _padded(x, windows, value)
    out_size = windows.output_size(*x.shape[2:])
    return [padded[windows.at(i, j, out_size)] for i, j in windows.positions()]


def max_pool2d(x: Tensor, windows, winner) -> Tensor:
    """The element of each −inf-padded window at kernel position `winner` (the fused op's choice: the first
    maximum), picked by gather."""
    candidates = stack(_window_slices(x, windows, -math.inf), 2)
    return gather(candidates, 2, winner[:, :, None]).squeeze(2)


def avg_pool2d(x: Tensor, windows, divisor) -> Tensor:
    """Σ of each zero-padded window / divisor (a number, or an [OH, OW] array of counts)."""
    slices = _window_slices(x, windows)
    total = sum(slices[1:], start=slices[0])
    return total / (divisor if isinstance(divisor, (int, float)) else Tensor._wrap(divisor))


def batch_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """(x − mean)/√(var + eps)·w + b per channel (axis 1), statistics over every other axis (var biased)."""
    axes, channel_shape = (0, *range(2, x.ndim)), (1, -1, *(1,) * (x.ndim - 2))
    centered = x - x.mean(axes, keepdim=True)
    out = centered * rsqrt((centered * centered).mean(axes, keepdim=True) + eps)
    out = out * reshape(weight, *channel_shape) if weight is not None else out
    return out + reshape(bias, *channel_shape) if bias is not None else out
