"""GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"), loadable from Hugging Face.

The same decoder as models/gpt_char.py, in Hugging Face's names and with GPT-2's details:

    h = wte[ids] + wpe[positions]                                  [B, T, C]
    h = h + attn(ln_1(h))      } × n_layer, pre-norm blocks
    h = h + mlp(ln_2(h))       }  mlp = c_fc → gelu_new (tanh GELU) → c_proj
    logits = ln_f(h) · wteᵀ                                        [B, T, V]  (lm_head tied to wte)

What differs from the lecture's model: every Linear has a bias, the MLP uses the tanh GELU, there is a final
LayerNorm before a head that shares the token embedding, and `attention_mask` ([B, T], 1 = token, 0 = pad) masks
padded keys as Hugging Face does (outputs at pad positions are unspecified). Hugging Face stores c_attn, c_proj and
c_fc as `Conv1D` weights [in, out]; here they are ordinary `nn.Linear` weights [out, in], and models/hf.py
transposes the four names in `HF_CONV1D_WEIGHTS` on load and save. `generate` decodes with a key/value cache
(nn.KVCache, one per layer) and gives the same tokens as recomputing the whole context at every step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.generation import CausalLM
from models.hf import ACTIVATIONS, PretrainedModel, as_ids, as_input_ids, key_padding_mask, model_device


HF_CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


@dataclass
class GPT2Config:
    """Hugging Face's GPT2Config fields that define the model; the defaults are the 124M `gpt2` checkpoint.

    Flags that change the numbers are honoured (scale_attn_weights, scale_attn_by_inverse_layer_idx, the
    activation) or rejected by name (add_cross_attention, an unknown activation). Other config.json keys
    (n_ctx, summary_*, use_cache, …) do not change GPT2LMHeadModel's logits and are ignored on load."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False  # precision only (fp16 overflow); we compute in the model's dtype
    add_cross_attention: bool = False
    tie_word_embeddings: bool = True
    bos_token_id: int = 50256
    eos_token_id: int = 50256

    model_type = "gpt2"

    def __post_init__(self) -> None:
        if self.add_cross_attention:
            raise ValueError("GPT2Config: add_cross_attention=True (the encoder-decoder form) is not supported")
        if self.activation_function not in ACTIVATIONS:
            raise ValueError(f"GPT2Config: activation_function {self.activation_function!r} is not supported "
                             f"(supported: {', '.join(ACTIVATIONS)})")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPT2Config: n_embd {self.n_embd} must be a multiple of n_head {self.n_head}")


class GPT2Attention(nn.Module):
    """Causal multi-head self-attention with a fused q|k|v projection `c_attn` and an output projection `c_proj`."""

    def __init__(self, config: GPT2Config, layer_idx: int):
        super().__init__()
        self.n_head, self.attn_pdrop = config.n_head, config.attn_pdrop
        head_dim = config.n_embd // config.n_head
        self.scale = 1 / math.sqrt(head_dim) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            self.scale /= layer_idx + 1
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: tt.Tensor, key_mask=None, cache: nn.KVCache | None = None) -> tt.Tensor:
        """x [B, T, C] → [B, T, C]. Head h of q, k, v is the slice [h·d, (h+1)·d) of the C-wide thirds of
        c_attn(x); it computes softmax(q·kᵀ·scale, masked to earlier real keys)·v; heads are merged and
        projected. key_mask: bool [B, 1, 1, Tk] (True = real key) or None; Tk counts cached keys too."""
        qkv = self.c_attn(x)                                                  # [B, T, 3C]
        dropout_p = self.attn_pdrop if self.training else 0.0
        if cache is None:  # the fused path: no head split/merge copies in backward
            attended = F.packed_self_attention(qkv, self.n_head, key_mask, dropout_p, is_causal=True,
                                               scale=self.scale)
        else:
            batch, time, width = qkv.shape
            heads = qkv.reshape(batch, time, 3, self.n_head, width // (3 * self.n_head)).permute(2, 0, 3, 1, 4)
            k, v = cache.append(heads[1], heads[2])                           # [B, nh, Tk, d]
            attended = F.scaled_dot_product_attention(heads[0], k, v, key_mask, dropout_p, is_causal=True,
                                                      scale=self.scale)      # [B, nh, T, d]
            attended = attended.transpose(1, 2).reshape(batch, time, width // 3)
        return self.resid_dropout(self.c_proj(attended))


class GPT2MLP(nn.Module):
    """Position-wise MLP: c_fc (C → n_inner, default 4C) → activation (gelu_new) → c_proj → dropout."""

    def __init__(self, config: GPT2Config):
        super().__init__()
        inner = config.n_inner or 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, inner)
        self.c_proj = nn.Linear(inner, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)
        self.activation = ACTIVATIONS[config.activation_function]

    def forward(self, x: tt.Tensor) -> tt.Tensor:
        return self.dropout(self.c_proj(self.activation(self.c_fc(x))))


class GPT2Block(nn.Module):
    """Pre-norm residual block: h + attn(ln_1(h)), then h + mlp(ln_2(h))."""

    def __init__(self, config: GPT2Config, layer_idx: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(config)

    def forward(self, h: tt.Tensor, key_mask=None, cache: nn.KVCache | None = None) -> tt.Tensor:
        h = h + self.attn(self.ln_1(h), key_mask, cache)
        return h + self.mlp(self.ln_2(h))


class GPT2Model(PretrainedModel):
    """The GPT-2 trunk: embeddings, n_layer blocks, final LayerNorm. forward returns hidden states [B, T, C]."""

    config_class = GPT2Config
    base_model_prefix = "transformer"
    hf_transposed = HF_CONV1D_WEIGHTS
    hf_ignored = (r"(^|\.)attn\.(masked_)?bias$",)  # the causal-mask buffers of old checkpoints

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([GPT2Block(config, i) for i in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """N(0, initializer_range) weights and zero biases, as Hugging Face (without its c_proj rescaling)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, attention_mask=None, caches: list[nn.KVCache] | None = None,
                position_ids=None) -> tt.Tensor:
        """input_ids [B, T] → hidden states [B, T, C]. attention_mask [B, Tk] (1 = token, 0 = pad) covers the
        cached keys too. caches: one nn.KVCache per layer; positions then start at the cached length, unless
        position_ids [B, T] give them (as `generate` does for left-padded prompts)."""
        input_ids = as_input_ids(input_ids, model_device(self))
        past = caches[0].length if caches else 0
        time = input_ids.shape[1]
        if past + time > self.config.n_positions:
            raise ValueError(f"positions up to {past + time} exceed n_positions {self.config.n_positions}")
        key_mask = key_padding_mask(attention_mask, input_ids, past)        # [B, 1, 1, Tk], keys only
        if position_ids is None:
            positions = tt.arange(past, past + time, device=input_ids.device)
        else:
            positions = as_ids(position_ids, input_ids.device)
        h = self.drop(self.wte(input_ids) + self.wpe(positions))
        for i, block in enumerate(self.h):
            h = block(h, key_mask, caches[i] if caches else None)
        return self.ln_f(h)


class GPT2LMHeadModel(PretrainedModel, CausalLM):
    """GPT-2 with its language-model head: logits [B, T, V] = ln_f(h) · wteᵀ (the head shares wte's weight)."""

    config_class = GPT2Config
    base_model_prefix = "transformer"
    hf_transposed = HF_CONV1D_WEIGHTS
    hf_ignored = GPT2Model.hf_ignored
    hf_tied = {"lm_head.weight": "transformer.wte.weight"}  # target: source, when tie_word_embeddings

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.config = config
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
        else:
            nn.init.normal_(self.lm_head.weight, mean=0.0, std=config.initializer_range)

    def forward(self, input_ids, attention_mask=None, caches: list[nn.KVCache] | None = None,
                position_ids=None) -> tt.Tensor:
        """input_ids [B, T] → logits [B, T, V]; the other arguments as in GPT2Model.forward."""
        return self.lm_head(self.transformer(input_ids, attention_mask, caches, position_ids))

    @property
    def context_window(self) -> int:
        return self.config.n_positions

    @property
    def num_layers(self) -> int:
        return self.config.n_layer
