"""Attention layers: rotary position embeddings, the key/value cache, and multi-head attention.

Builds on tinytensor.nn.layers (Linear) and on the fused `F.scaled_dot_product_attention` (tinytensor.ops.nn),
which does softmax(q·kᵀ/√d + mask)·v with an analytic backward and serves grouped-query heads by broadcasting.
This file only projects, splits heads, applies masks, rotary embeddings and the cache, and merges heads back.

Conventions (Hugging Face's, so checkpoints map by name; see MODELS.md §0.3 and §6):
- Head split: [B, T, H·d] → reshape [B, T, H, d] → transpose [B, H, T, d]; head h owns features [h·d, (h+1)·d).
- Grouped-query attention: key/value head g serves query heads g·G … g·G + G − 1, where G = H / Hkv.
- `key_padding_mask` is [B, Tk] with True (or 1) = a real token that may be attended to and False (0) = padding,
  exactly like Hugging Face's `attention_mask`. It masks keys only: outputs at padded query positions are
  unspecified; compare real positions only.
- Rotary embeddings use the rotate-half pairing (dimension k with k + d/2), not Meta's interleaved pairs.
"""
from __future__ import annotations

import numpy

from tinytensor import backend
from tinytensor.nn import functional as F
from tinytensor.nn.layers import Linear
from tinytensor.nn.module import Module
from tinytensor.ops.shape import cat
from tinytensor.tensor import Tensor


# ---- rotary position embedding --------------------------------------------------------------------------------------
def rotate_half(x: Tensor) -> Tensor:
    """[..., d] → cat(−x[..., d/2:], x[..., :d/2]): a quarter turn of each pair (k, k + d/2)."""
    half = x.shape[-1] // 2
    return cat([-x[..., half:], x[..., :half]], dim=-1)


class RotaryEmbedding(Module):
    """Rotary position embedding (RoFormer, Su et al. 2021, eq. 34) in Hugging Face LLaMA's rotate-half form.

    Position p turns the pair (x_k, x_{k+d/2}) by the angle p·θ^(−2k/d): x' = x·cos + rotate_half(x)·sin with
    cos/sin of cat(freqs, freqs), freqs = outer(positions, inv_freq). Rotating q by m and k by n makes q·k depend
    only on m − n. The cos/sin tables [max_position_embeddings, d] are non-persistent buffers, computed in float64
    and rebuilt from float64 whenever the module changes dtype, so float64 runs are exact.
    """

    def __init__(self, head_dim: int, max_position_embeddings: int = 2048, theta: float = 10000.0, dtype=None,
                 device: str | None = None):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryEmbedding needs an even head_dim, got {head_dim}")
        self.head_dim, self.max_position_embeddings, self.theta = head_dim, max_position_embeddings, theta
        cos, sin = self._tables(backend.DEFAULT_FLOAT if dtype is None else backend.as_dtype(dtype), device or "cpu")
        self.register_buffer("cos_cached", cos, persistent=False)
        self.register_buffer("sin_cached", sin, persistent=False)

    def _tables(self, dtype, device: str) -> tuple[Tensor, Tensor]:
        """cos and sin of cat(freqs, freqs) for positions 0 … max−1: each [max_position_embeddings, head_dim]."""
        inv_freq = 1.0 / self.theta ** (numpy.arange(0, self.head_dim, 2, dtype=numpy.float64) / self.head_dim)
        freqs = numpy.outer(numpy.arange(self.max_position_embeddings, dtype=numpy.float64), inv_freq)
        angles = numpy.concatenate([freqs, freqs], axis=-1)
        return tuple(Tensor(backend.to_device(table(angles).astype(dtype), device)) for table in (numpy.cos, numpy.sin))

    def to(self, device_or_dtype) -> RotaryEmbedding:
        """Move or cast like any Module, then recompute the tables from float64 in the new dtype."""
        super().to(device_or_dtype)
        self.cos_cached, self.sin_cached = self._tables(self.cos_cached.dtype, self.cos_cached.device)
        return self

    def forward(self, q: Tensor, k: Tensor, position_offset: int = 0) -> tuple[Tensor, Tensor]:
        """Rotate q [B, H, Tq, d] and k [B, Hkv, Tk, d] as if they sit at positions offset, offset + 1, …"""
        return (self.rotate(q, slice(position_offset, position_offset + q.shape[-2])),
                self.rotate(k, slice(position_offset, position_offset + k.shape[-2])))

    def rotate(self, x: Tensor, positions) -> Tensor:
        """Rotate x [B, H, T, d] (or [..., T, d]) to `positions`: integers [T] (shared by the batch) or [B, T]
        (one row per sequence, e.g. for left padding), or a slice of positions."""
        cos, sin = self._angles(positions, x)
        return x * cos + rotate_half(x) * sin

    def _angles(self, positions, x: Tensor) -> tuple[Tensor, Tensor]:
        """The cos and sin rows for `positions`, in x's dtype, shaped to broadcast against x."""
        index = positions if isinstance(positions, slice) else _as_array(positions, x.device)
        self._check_positions(index)
        cos, sin = self.cos_cached.data[index], self.sin_cached.data[index]
        if cos.ndim == 3:  # per-sequence positions [B, T, d] → [B, 1, T, d], broadcast over heads
            cos, sin = cos[:, None], sin[:, None]
        if cos.dtype != x.dtype:  # keep float32 runs in float32 even next to float64 tables
            cos, sin = cos.astype(x.dtype), sin.astype(x.dtype)
        return Tensor._wrap(cos), Tensor._wrap(sin)

    def _check_positions(self, index) -> None:
        """Positions must lie in the tables. Device positions are checked with the next transfer to the host
        (`backend.check_later`): reading their min and max here would cost two syncs per call."""
        limit = self.max_position_embeddings
        if isinstance(index, slice):
            low, high = index.start, index.stop - 1
        elif not index.size:
            return
        elif backend.device_of(index) != "cpu":
            backend.check_later((index.min() < 0) | (index.max() >= limit), ValueError(
                f"rotary positions fall outside 0…{limit - 1} (detected on the GPU); raise max_position_embeddings"))
            return
        else:
            low, high = int(index.min()), int(index.max())
        if low < 0 or high >= limit:
            raise ValueError(f"rotary positions {low}…{high} fall outside 0…{limit - 1}; "
                             "raise max_position_embeddings")

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_position_embeddings={self.max_position_embeddings}, theta={self.theta}"


def _as_array(values, device: str):
    """An array on `device` from a Tensor, NumPy/CuPy array or list (masks and positions: no gradient)."""
    array = values.data if isinstance(values, Tensor) else values
    return backend.to_device(array if hasattr(array, "dtype") else numpy.asarray(array), device)


# ---- key/value cache ------------------------------------------------------------------------------------------------
class KVCache:
    """The keys and values one attention layer has seen so far, for incremental decoding (one cache per layer).

    Holds k and v [B, Hkv, T, d] (after rotary, before any head grouping). `append` concatenates new ones along
    time and returns the full k and v; `length` is how many positions are cached, which is also the position of
    the next token. For cross attention the projected context is stored on the first call and reused after.
    """

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k, self.v = cat([self.k, k], dim=-2), cat([self.v, v], dim=-2)
        return self.k, self.v


# ---- multi-head attention -------------------------------------------------------------------------------------------
class MultiHeadAttention(Module):
    """Multi-head attention (Vaswani et al. 2017, §3.2.2) with grouped-query heads, rotary and a KV cache.

    x [B, T, embed_dim] → [B, T, embed_dim]. Projections: `qkv_proj` (one Linear producing q | k | v, each
    head-contiguous, (H + 2·Hkv)·d outputs) when `fused_qkv`, else `q_proj`, `k_proj`, `v_proj`; then `out_proj`.
    `dropout` applies to the attention weights while training; the output is not dropped (the block does that).
    `kdim` is the feature size of the cross-attention context (needs `fused_qkv=False` when it differs from
    embed_dim); a fused layer attends across by using the q rows and the k|v rows of `qkv_proj` separately.
    `rotary` (a RotaryEmbedding, may be shared by every layer) turns q and k in self-attention only.
    `head_dim` defaults to embed_dim / num_heads.
    """

    def __init__(self, embed_dim: int, num_heads: int, n_kv_heads: int | None = None, bias: bool = True,
                 dropout: float = 0.0, fused_qkv: bool = True, rotary: RotaryEmbedding | None = None,
                 kdim: int | None = None, *, head_dim: int | None = None, dtype=None, device: str | None = None):
        super().__init__()
        self.embed_dim, self.num_heads, self.dropout, self.fused_qkv = embed_dim, num_heads, dropout, fused_qkv
        self.n_kv_heads = num_heads if n_kv_heads is None else n_kv_heads
        self.head_dim = embed_dim // num_heads if head_dim is None else head_dim
        self.kdim = embed_dim if kdim is None else kdim
        self._check_config(head_dim is None, rotary)
        q_size, kv_size = num_heads * self.head_dim, self.n_kv_heads * self.head_dim
        linear = {"bias": bias, "dtype": dtype, "device": device}
        if fused_qkv:
            self.qkv_proj = Linear(embed_dim, q_size + 2 * kv_size, **linear)
        else:
            self.q_proj = Linear(embed_dim, q_size, **linear)
            self.k_proj = Linear(self.kdim, kv_size, **linear)
            self.v_proj = Linear(self.kdim, kv_size, **linear)
        self.out_proj = Linear(q_size, embed_dim, **linear)
        self.rotary = rotary

    def _check_config(self, derived_head_dim: bool, rotary: RotaryEmbedding | None) -> None:
        if derived_head_dim and self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.n_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.fused_qkv and self.kdim != self.embed_dim:
            raise ValueError(f"a fused qkv projection needs kdim == embed_dim (got {self.kdim} and "
                             f"{self.embed_dim}); pass fused_qkv=False")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"attention dropout must be in [0, 1), got {self.dropout}")
        if rotary is not None and rotary.head_dim != self.head_dim:
            raise ValueError(f"rotary head_dim {rotary.head_dim} != attention head_dim {self.head_dim}")

    def forward(self, x: Tensor, context: Tensor | None = None, key_padding_mask=None, attn_mask=None,
                is_causal: bool = False, cache: KVCache | None = None, position_ids=None) -> Tensor:
        """Attend from x [B, T, E] to itself, or to `context` [B, Tk, kdim] (cross attention).

        key_padding_mask: [B, Tk] bool/int, True/1 = real key, False/0 = padding; with a cache it covers every
            key, cached ones included (Tk = cache.length + T).
        attn_mask: extra mask broadcastable to [B, H, T, Tk]: bool (True = may attend) or additive float.
        is_causal: query t sees keys up to t (aligned at the bottom right, so it stays right with a cache).
        cache: a KVCache; new keys/values are appended and attention covers all of them. Rotary positions start
            at the cache length unless `position_ids` ([T] or [B, T] integers) says otherwise.
        """
        if context is None:
            q, k, v = self._project_self(x)
            if self.rotary is not None:
                q, k = self._rotate(q, k, cache, position_ids)
            if cache is not None:
                k, v = cache.append(k, v)
        else:
            if self.rotary is not None:
                raise ValueError("rotary embeddings apply to self-attention only; this call passed a context")
            q = self._project_query(x)
            if cache is not None and cache.length:
                k, v = cache.k, cache.v
            else:
                k, v = self._project_key_value(context)
                if cache is not None:
                    cache.append(k, v)
        mask = self._attention_mask(key_padding_mask, attn_mask, q, k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(_merge_heads(out))

    def _project_self(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q [B, H, T, d], k and v [B, Hkv, T, d] from x [B, T, E]: one matmul when fused."""
        heads, kv_heads = self.num_heads, self.n_kv_heads
        if not self.fused_qkv:
            return (_split_heads(self.q_proj(x), heads), _split_heads(self.k_proj(x), kv_heads),
                    _split_heads(self.v_proj(x), kv_heads))
        qkv = _split_heads(self.qkv_proj(x), heads + 2 * kv_heads)
        return qkv[:, :heads], qkv[:, heads:heads + kv_heads], qkv[:, heads + kv_heads:]

    def _project_query(self, x: Tensor) -> Tensor:
        """q [B, H, T, d] alone (cross attention): the query rows of the fused weight, or q_proj."""
        if not self.fused_qkv:
            return _split_heads(self.q_proj(x), self.num_heads)
        return _split_heads(self._fused_slice(x, slice(0, self.num_heads * self.head_dim)), self.num_heads)

    def _project_key_value(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """k and v [B, Hkv, Tk, d] from the context [B, Tk, kdim]."""
        kv_heads = self.n_kv_heads
        if not self.fused_qkv:
            return _split_heads(self.k_proj(context), kv_heads), _split_heads(self.v_proj(context), kv_heads)
        kv = _split_heads(self._fused_slice(context, slice(self.num_heads * self.head_dim, None)), 2 * kv_heads)
        return kv[:, :kv_heads], kv[:, kv_heads:]

    def _fused_slice(self, x: Tensor, rows: slice) -> Tensor:
        """x through only the `rows` outputs of qkv_proj (its q part, or its k|v part)."""
        bias = self.qkv_proj.bias
        return F.linear(x, self.qkv_proj.weight[rows], bias[rows] if bias is not None else None)

    def _rotate(self, q: Tensor, k: Tensor, cache: KVCache | None, position_ids) -> tuple[Tensor, Tensor]:
        if position_ids is not None:
            return self.rotary.rotate(q, position_ids), self.rotary.rotate(k, position_ids)
        return self.rotary(q, k, position_offset=cache.length if cache is not None else 0)

    def _attention_mask(self, key_padding_mask, attn_mask, q: Tensor, k: Tensor):
        """One mask for F.scaled_dot_product_attention, or None: key padding [B, Tk] becomes [B, 1, 1, Tk]."""
        keep = None
        if key_padding_mask is not None:
            padding = _as_array(key_padding_mask, q.device)
            if padding.shape != (q.shape[0], k.shape[-2]):
                raise ValueError(f"key_padding_mask has shape {padding.shape}, expected [B, Tk] = "
                                 f"{(q.shape[0], k.shape[-2])}")
            keep = (padding != 0)[:, None, None, :]
        if attn_mask is None:
            return keep
        extra = _as_array(attn_mask, q.device)
        if keep is None:
            return extra
        if extra.dtype == backend.bool_:
            return extra & keep
        xp = q.xp
        return xp.where(keep, extra.astype(q.dtype), xp.finfo(q.dtype).min)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, n_kv_heads={self.n_kv_heads}, "
                f"head_dim={self.head_dim}, dropout={self.dropout}")


def _split_heads(t: Tensor, heads: int) -> Tensor:
    """[B, T, heads·d] → [B, heads, T, d]."""
    batch, length, features = t.shape
    return t.reshape(batch, length, heads, features // heads).transpose(1, 2)


def _merge_heads(t: Tensor) -> Tensor:
    """[B, H, T, d] → [B, T, H·d], the inverse of _split_heads."""
    batch, heads, length, head_dim = t.shape
    return t.transpose(1, 2).reshape(batch, length, heads * head_dim)
