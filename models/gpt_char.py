"""The character-level GPT of Karpathy's "Let's build GPT" lecture, and its bigram baseline.

Read this file first in the model zoo: it is the smallest complete transformer here. A decoder-only model
(Radford et al. 2018) predicts the next character from the previous `block_size` ones:

    x = token_embedding[idx] + position_embedding[0..T)           [B, T, C]
    x = x + attention(layer_norm(x))      } × n_layer, pre-norm blocks
    x = x + mlp(layer_norm(x))            }
    logits = lm_head(layer_norm(x))                                [B, T, V]

What differs from the lecture's code, and why: the per-head key/query/value Linears are one fused `c_attn`
projection (the same maths; one matrix multiply instead of 3·n_head), and attention runs as one fused op,
`F.packed_self_attention`, which splits that projection into heads, attends causally and merges the heads
(`CausalSelfAttention.forward` spells out what it computes). `forward` always returns logits as [B, T, V]
(the lecture flattens them when targets are given). Weights start from N(0, 0.02) with zero biases, as in the
lecture's final gpt.py.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.generation import check_max_new_tokens, sample_next_token
from models.hf import as_ids, as_input_ids, model_device


@dataclass
class GPTConfig:
    """Hyperparameters; the defaults are the lecture's final model (10.8M parameters with its 65 characters)."""

    vocab_size: int = 65
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.2
    bias: bool = True
    activation: str = "relu"

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    """n_head heads of masked self-attention, each seeing only earlier positions, then an output projection."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.n_embd % config.n_head:
            raise ValueError(f"n_embd {config.n_embd} must be a multiple of n_head {config.n_head}")
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: tt.Tensor) -> tt.Tensor:
        """x [B, T, C] → [B, T, C]. With q, k, v the three C-wide slices of c_attn(x), each split into n_head
        heads [B, nh, T, hd], head h computes softmax(q_h·k_hᵀ/√hd, masked to j ≤ i)·v_h (dropout on the
        weights while training); the heads' outputs are laid side by side again ([B, T, C]) and projected."""
        qkv = self.c_attn(x)                                                  # [B, T, 3C]
        attended = F.packed_self_attention(qkv, self.n_head, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)   # [B, T, C]
        return self.resid_dropout(self.proj(attended))


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(C, 4C) → ReLU → Linear(4C, C) → dropout."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.activation = nn.GELU() if config.activation == "gelu" else nn.ReLU()
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: tt.Tensor) -> tt.Tensor:
        return self.dropout(self.proj(self.activation(self.fc(x))))


class Block(nn.Module):
    """Communication (attention) then computation (MLP), each in a pre-norm residual branch."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.sa = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.ffwd = FeedForward(config)

    def forward(self, x: tt.Tensor) -> tt.Tensor:
        x = x + self.sa(self.ln1(x))
        return x + self.ffwd(self.ln2(x))


class CharLanguageModel(nn.Module):
    """What both character models share: the loss and sampling with a cropped context."""

    block_size: int | None = None

    def loss(self, logits: tt.Tensor, targets) -> tt.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), as_ids(targets, logits.device).reshape(-1))

    @tt.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None) -> tt.Tensor:
        """Append `max_new_tokens` sampled ids to idx [B, T], feeding at most the last block_size ids each step."""
        idx = as_input_ids(idx, model_device(self))
        check_max_new_tokens(max_new_tokens)
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            context = idx if self.block_size is None else idx[:, -self.block_size:]
            logits, _ = self(context)
            next_id = sample_next_token(logits[:, -1, :], temperature, top_k, top_p)
            idx = tt.cat([idx, next_id], dim=1)
        self.train(was_training)
        return idx


class BigramLanguageModel(CharLanguageModel):
    """The baseline: each character's logits for the next one are a row of a V×V table."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.config = {"vocab_size": vocab_size}
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None) -> tuple[tt.Tensor, tt.Tensor | None]:
        logits = self.token_embedding_table(as_input_ids(idx, model_device(self)))                  # [B, T, V]
        return logits, (self.loss(logits, targets) if targets is not None else None)


class GPT(CharLanguageModel):
    """Token + learned position embeddings, n_layer pre-norm blocks, final LayerNorm, LM head (not tied)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.block_size = config.block_size
        self.token_embedding_table = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding_table = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)
        self.apply(_init_weights)

    def forward(self, idx, targets=None) -> tuple[tt.Tensor, tt.Tensor | None]:
        idx = as_input_ids(idx, model_device(self))
        time = idx.shape[1]
        if time > self.block_size:
            raise ValueError(f"sequence length {time} exceeds block_size {self.block_size}")
        positions = tt.arange(time, device=idx.device)
        x = self.token_embedding_table(idx) + self.position_embedding_table(positions)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))                                 # [B, T, V]
        return logits, (self.loss(logits, targets) if targets is not None else None)


def _init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for Linear and Embedding weights, zero biases (the lecture's final initialisation)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
