"""LLaMA (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models"), loadable from Hugging Face.

A pre-norm decoder like models/gpt2.py, with LLaMA's three changes and Hugging Face's names:

    h = embed_tokens[ids]                                           [B, T, H]  (no absolute positions)
    h = h + o_proj(attn(input_layernorm(h)))            } × num_hidden_layers; q and k rotated by RoPE
    h = h + mlp(post_attention_layernorm(h))            }  mlp = down_proj(silu(gate_proj(x)) ⊙ up_proj(x))
    logits = lm_head(norm(h))                                       [B, T, V]

What differs from GPT-2: RMSNorm instead of LayerNorm (no mean, no bias), the SwiGLU MLP, rotary position
embeddings (RoFormer) in Hugging Face's rotate-half pairing (dimension k with k + d/2, `rope_theta` from the config)
instead of learned positions, grouped-query attention (`num_key_value_heads` key/value heads, each serving
num_attention_heads / num_key_value_heads query heads, as repeat_interleave), no biases unless `attention_bias` /
`mlp_bias`, and a separate `lm_head` unless `tie_word_embeddings`. Positions are 0…T−1 in a plain forward even with
left padding (as Hugging Face); `attention_mask` masks padded keys. Every step runs in the model's dtype: unlike
Hugging Face, which computes RMSNorm, the RoPE angles and the softmax in float32 even in a float64 model.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.generation import CausalLM
from models.hf import PretrainedModel, as_ids, as_input_ids, key_padding_mask, model_device
from tinytensor.io import check_type


@dataclass
class LlamaConfig:
    """Hugging Face's LlamaConfig fields that define the model (defaults: LLaMA-7B, as transformers).

    RoPE: `rope_parameters` = {"rope_type": "default", "rope_theta": θ} (transformers v5); the legacy top-level
    `rope_theta` and `rope_scaling` are accepted and folded into it (rope_scaling first, as transformers does).
    Scaled RoPE types (linear, dynamic, yarn, llama3, …) change the frequencies and are rejected by name, as is any
    activation other than SiLU. `pretraining_tp`, `use_cache` and the like do not change the logits: ignored."""

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None   # None: one key/value head per query head
    head_dim: int | None = None              # None: hidden_size / num_attention_heads
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    pad_token_id: int | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = False
    rope_parameters: dict | None = None
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    rope_theta: dataclasses.InitVar[float | None] = None   # legacy config.json keys: read, folded, never written
    rope_scaling: dataclasses.InitVar[dict | None] = None

    model_type = "llama"
    hf_legacy_keys = ("rope_theta", "rope_scaling")

    def __post_init__(self, rope_theta: float | None, rope_scaling: dict | None) -> None:
        rope = dict(rope_scaling or self.rope_parameters or {})   # rope_scaling wins, as in transformers
        rope_type = rope.pop("type", None) or rope.get("rope_type", "default")  # `type`: pre-v4.45 configs
        if rope_type != "default":
            raise ValueError(f"LlamaConfig: rope_type {rope_type!r} (rope_parameters/rope_scaling) is not supported; "
                             "only 'default' RoPE is (linear, dynamic, yarn, llama3, … rescale the frequencies)")
        theta = rope.get("rope_theta", rope_theta if rope_theta is not None else 10000.0)
        theta = check_type(theta, float, "rope_theta")  # a string or true would otherwise pass float()
        self.rope_parameters = {**rope, "rope_type": "default", "rope_theta": theta}
        if self.hidden_act not in ("silu", "swish"):
            raise ValueError(f"LlamaConfig: hidden_act {self.hidden_act!r} is not supported (supported: silu, swish)")
        self.num_key_value_heads = self.num_key_value_heads or self.num_attention_heads
        self.head_dim = self.head_dim or self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"LlamaConfig: num_attention_heads {self.num_attention_heads} must be a multiple of "
                             f"num_key_value_heads {self.num_key_value_heads}")
        if self.head_dim % 2:
            raise ValueError(f"LlamaConfig: head_dim {self.head_dim} must be even for rotary embeddings")


class LlamaAttention(nn.Module):
    """Causal grouped-query self-attention: q_proj, k_proj, v_proj, rotary on q and k, then o_proj.

    q has num_attention_heads heads, k and v num_key_value_heads; F.scaled_dot_product_attention lets key/value
    head g serve query heads g·G … g·G + G − 1 (G = heads / kv heads) by broadcasting, without copies."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim, self.attention_dropout = config.head_dim, config.attention_dropout
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=bias)

    def forward(self, x: tt.Tensor, rotary: nn.RotaryEmbedding, positions: slice, key_mask=None,
                cache: nn.KVCache | None = None) -> tt.Tensor:
        """x [B, T, H] → [B, T, H]. q and k are rotated to `positions` before k joins the cache; key_mask: bool
        [B, 1, 1, Tk] (True = real key) or None, Tk counting cached keys too."""
        batch, time, _ = x.shape
        q = self.q_proj(x).reshape(batch, time, self.num_heads, self.head_dim).transpose(1, 2)       # [B, nh, T, d]
        k = self.k_proj(x).reshape(batch, time, self.num_kv_heads, self.head_dim).transpose(1, 2)    # [B, nkv, T, d]
        v = self.v_proj(x).reshape(batch, time, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotary.rotate(q, positions), rotary.rotate(k, positions)
        if cache is not None:
            k, v = cache.append(k, v)
        dropout_p = self.attention_dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, key_mask, dropout_p, is_causal=True)     # [B, nh, T, d]
        return self.o_proj(attended.transpose(1, 2).reshape(batch, time, self.num_heads * self.head_dim))


class LlamaDecoderLayer(nn.Module):
    """Pre-norm residual block: h + self_attn(input_layernorm(h)), then h + mlp(post_attention_layernorm(h))."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.self_attn = LlamaAttention(config)
        self.mlp = nn.SwiGLU(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, h: tt.Tensor, rotary: nn.RotaryEmbedding, positions: slice, key_mask=None,
                cache: nn.KVCache | None = None) -> tt.Tensor:
        h = h + self.self_attn(self.input_layernorm(h), rotary, positions, key_mask, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaModel(PretrainedModel):
    """The LLaMA trunk: embed_tokens, num_hidden_layers decoder layers, final norm; forward gives [B, T, H].
    `rotary_emb` holds the cos/sin tables every layer shares (non-persistent: never saved, ignored on load)."""

    config_class = LlamaConfig
    base_model_prefix = "model"

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.layers = nn.ModuleList([LlamaDecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = nn.RotaryEmbedding(config.head_dim, config.max_position_embeddings,
                                             theta=config.rope_parameters["rope_theta"])
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """N(0, initializer_range) weights, zero biases, the pad row zeroed, as Hugging Face."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx] = 0

    def forward(self, input_ids, attention_mask=None, caches: list[nn.KVCache] | None = None,
                position_ids=None) -> tt.Tensor:
        """input_ids [B, T] → hidden states [B, T, H]. attention_mask [B, Tk] (1 = token, 0 = pad) covers cached
        keys too. caches: one nn.KVCache per layer; positions then start at the cached length (not shifted for
        left padding, as Hugging Face), unless position_ids [B, T] give them (as `generate` does)."""
        input_ids = as_input_ids(input_ids, model_device(self))
        past = caches[0].length if caches else 0
        if position_ids is None:
            positions = slice(past, past + input_ids.shape[1])
        else:
            positions = as_ids(position_ids, input_ids.device).data
        key_mask = key_padding_mask(attention_mask, input_ids, past)        # [B, 1, 1, Tk], keys only
        h = self.embed_tokens(input_ids)
        for i, layer in enumerate(self.layers):
            h = layer(h, self.rotary_emb, positions, key_mask, caches[i] if caches else None)
        return self.norm(h)


class LlamaForCausalLM(PretrainedModel, CausalLM):
    """LLaMA with its language-model head: logits [B, T, V] = lm_head(norm(h)), lm_head tied to embed_tokens only
    when `tie_word_embeddings` (off by default, unlike GPT-2)."""

    config_class = LlamaConfig
    base_model_prefix = "model"
    hf_tied = {"lm_head.weight": "model.embed_tokens.weight"}  # target: source, when tie_word_embeddings

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        else:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=config.initializer_range)

    def forward(self, input_ids, attention_mask=None, caches: list[nn.KVCache] | None = None,
                position_ids=None) -> tt.Tensor:
        """input_ids [B, T] → logits [B, T, V]; the other arguments as in LlamaModel.forward."""
        return self.lm_head(self.model(input_ids, attention_mask, caches, position_ids))

    @property
    def context_window(self) -> int:
        return self.config.max_position_embeddings

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers
