"""The original encoder-decoder Transformer ("Attention Is All You Need", Vaswani et al. 2017), for translation.

The model the rest of the zoo descends from: GPT keeps only its decoder, BERT only its encoder. A source sentence
is encoded once; the decoder then reads the target so far and attends to the encoded source (MODELS.md §7):

    memory = encoder(embed(src)·√d + PE)                                    [B, S, C]
    x = embed(tgt_in)·√d + PE                                               [B, T, C]
    x = norm(x + self_attention(x, causal))          } × n_decoder_layers, post-norm as in the paper
    x = norm(x + cross_attention(x, memory))         }   (norm_first=True: x + sublayer(norm(x)) and a final
    x = norm(x + feed_forward(x))                    }    LayerNorm per stack, as the annotated transformer)
    logits = x · embedᵀ                                                     [B, T, V]

Positions use the paper's fixed sinusoids with sin on even and cos on odd features (interleaved, not
tensor2tensor's [sin | cos] halves). With one shared vocabulary (`share_embeddings`) one matrix serves as source
embedding, target embedding and pre-softmax projection (§3.4); otherwise the source has its own embedding and the
target embedding is still tied to the output. Attention reuses `nn.MultiHeadAttention`: the encoder and the decoder
self-attention use a fused q|k|v projection, cross attention separate q/k/v projections (queries from the
decoder, keys and values from the memory, padded source positions masked out).

Decoding: `greedy_decode` and `beam_search` (beam size, GNMT length penalty α; the paper uses beam 4, α = 0.6,
at most input length + 50 tokens) both feed one token per step and keep each decoder layer's keys and values in
a `KVCache` (the cross-attention cache projects the memory once). Loss: `Transformer.loss` is label-smoothed
cross-entropy in PyTorch's convention (target (1 − ε)·one-hot + ε/V spread over all V classes, pad rows ignored).

What differs from the paper, and why: LayerNorm eps 1e-5 (PyTorch's default; the paper gives none); weights start
Xavier-uniform (as the annotated transformer) and the shared embedding N(0, d^−0.5), so embed·√d has unit scale
and the tied output projection starts with small logits; attention weights are not dropped (the paper drops
only sublayer outputs and the embedding sums).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.hf import as_ids, as_input_ids, model_device
from tinytensor import backend


@dataclass
class TransformerConfig:
    """Hyperparameters; the defaults are the paper's base model (65M parameters with its 37K shared vocabulary)."""

    src_vocab_size: int = 37000
    tgt_vocab_size: int = 37000
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    dropout: float = 0.1
    norm_first: bool = False  # False: post-norm LayerNorm(x + sublayer(x)), the paper's; True: pre-norm
    layer_norm_eps: float = 1e-5
    share_embeddings: bool = True  # one matrix for source, target and output (needs one shared vocabulary)
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self):
        if self.d_model % self.n_heads or self.d_model % 2:
            raise ValueError(f"d_model {self.d_model} must be even and a multiple of n_heads {self.n_heads}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"share_embeddings needs one vocabulary, got {self.src_vocab_size} source and "
                             f"{self.tgt_vocab_size} target tokens")

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoidal_positions(length: int, d_model: int, offset: int = 0) -> np.ndarray:
    """PE[pos, 2i] = sin(pos/10000^(2i/d)), PE[pos, 2i+1] = cos(pos/10000^(2i/d)) for pos = offset … offset +
    length − 1, in float64: [length, d_model]."""
    positions = np.arange(offset, offset + length, dtype=np.float64)[:, None]
    frequencies = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
    table = np.empty((length, d_model))
    table[:, 0::2] = np.sin(positions * frequencies)
    table[:, 1::2] = np.cos(positions * frequencies)
    return table


def residual(x: tt.Tensor, sublayer: Callable, norm: nn.LayerNorm, dropout: nn.Dropout, norm_first: bool):
    """One residual sublayer: LayerNorm(x + Dropout(sublayer(x))) (post-norm), or x + Dropout(sublayer(norm(x)))."""
    if norm_first:
        return x + dropout(sublayer(norm(x)))
    return norm(x + dropout(sublayer(x)))


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = max(0, x·W1 + b1)·W2 + b2, applied at every position: [B, T, C] → [B, T, C] (eq. 2)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.d_ff)
        self.fc2 = nn.Linear(config.d_ff, config.d_model)

    def forward(self, x: tt.Tensor) -> tt.Tensor:
        return self.fc2(self.fc1(x).relu())


class EncoderLayer(nn.Module):
    """Self-attention over the source (padding masked), then the feed-forward network."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.norm_first = config.norm_first
        self.self_attn = nn.MultiHeadAttention(config.d_model, config.n_heads)
        self.self_attn_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.feed_forward = PositionwiseFeedForward(config)
        self.feed_forward_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: tt.Tensor, src_keep) -> tt.Tensor:
        """x [B, S, C], src_keep [B, S] (True = real token) → [B, S, C]."""
        x = residual(x, lambda h: self.self_attn(h, key_padding_mask=src_keep), self.self_attn_norm, self.dropout,
                     self.norm_first)
        return residual(x, self.feed_forward, self.feed_forward_norm, self.dropout, self.norm_first)


@dataclass
class LayerCache:
    """One decoder layer's keys and values: its own (grows by a step each token) and the memory's (fixed)."""

    self_attn: nn.KVCache
    cross_attn: nn.KVCache


class DecoderLayer(nn.Module):
    """Masked self-attention over the target so far, attention to the encoder memory, then the FFN."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.norm_first = config.norm_first
        self.self_attn = nn.MultiHeadAttention(config.d_model, config.n_heads)
        self.self_attn_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.cross_attn = nn.MultiHeadAttention(config.d_model, config.n_heads, fused_qkv=False)
        self.cross_attn_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.feed_forward = PositionwiseFeedForward(config)
        self.feed_forward_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: tt.Tensor, memory: tt.Tensor, src_keep, cache: LayerCache | None = None) -> tt.Tensor:
        """x [B, T, C] (the targets after any cached ones), memory [B, S, C], src_keep [B, S] → [B, T, C]."""
        self_cache, cross_cache = (cache.self_attn, cache.cross_attn) if cache is not None else (None, None)
        x = residual(x, lambda h: self.self_attn(h, is_causal=True, cache=self_cache), self.self_attn_norm,
                     self.dropout, self.norm_first)
        x = residual(x, lambda h: self.cross_attn(h, context=memory, key_padding_mask=src_keep, cache=cross_cache),
                     self.cross_attn_norm, self.dropout, self.norm_first)
        return residual(x, self.feed_forward, self.feed_forward_norm, self.dropout, self.norm_first)


class Transformer(nn.Module):
    """Encoder and decoder stacks with tied embeddings: `Transformer(src, tgt) -> logits` [B, T, V].

    src [B, S] is padded with `pad_id` (anywhere; padded keys are masked). tgt [B, T] is the decoder input, the
    target shifted right (it starts with `bos_id`); logits[:, t] predict the target token after tgt[:, :t + 1].
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.tgt_vocab_size, config.d_model)
        if not config.share_embeddings:
            self.src_embed_tokens = nn.Embedding(config.src_vocab_size, config.d_model)
        self.encoder_layers = nn.ModuleList([EncoderLayer(config) for _ in range(config.n_encoder_layers)])
        self.decoder_layers = nn.ModuleList([DecoderLayer(config) for _ in range(config.n_decoder_layers)])
        if config.norm_first:  # pre-norm leaves the residual stream unnormalised: one LayerNorm ends each stack
            self.encoder_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
            self.decoder_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.d_model**-0.5)

    # ---- the two stacks ------------------------------------------------------------------------------------------
    def forward(self, src, tgt) -> tt.Tensor:
        """src [B, S], tgt [B, T] (shifted right) → logits [B, T, tgt_vocab_size], with teacher forcing."""
        memory, src_keep = self.encode(src)
        return self.decode(tgt, memory, src_keep)

    def encode(self, src) -> tuple[tt.Tensor, object]:
        """src [B, S] → (memory [B, S, C], src_keep [B, S]: True where src is a real token, not padding; an array
        on the model's device)."""
        src = as_input_ids(src, model_device(self))
        src_keep = src.data != self.config.pad_id
        source_embedding = self.embed_tokens if self.config.share_embeddings else self.src_embed_tokens
        x = self._embed(source_embedding, src, position_offset=0)
        for layer in self.encoder_layers:
            x = layer(x, src_keep)
        return (self.encoder_norm(x) if self.config.norm_first else x), src_keep

    def decode(self, tgt, memory: tt.Tensor, src_keep, cache: list[LayerCache] | None = None) -> tt.Tensor:
        """tgt [B, T] → logits [B, T, V]. With a cache (from `new_cache`), tgt holds only the tokens after the
        cached ones; their positions continue from the cache length."""
        tgt = as_input_ids(tgt, model_device(self))
        offset = cache[0].self_attn.length if cache else 0
        x = self._embed(self.embed_tokens, tgt, position_offset=offset)
        for index, layer in enumerate(self.decoder_layers):
            x = layer(x, memory, src_keep, cache[index] if cache else None)
        if self.config.norm_first:
            x = self.decoder_norm(x)
        return F.linear(x, self.embed_tokens.weight)

    def _embed(self, embedding: nn.Embedding, ids: tt.Tensor, position_offset: int) -> tt.Tensor:
        """Token embedding · √d_model + sinusoidal positions, then dropout: ids [B, T] → [B, T, C]."""
        tokens = embedding(ids) * math.sqrt(self.config.d_model)
        positions = sinusoidal_positions(ids.shape[1], self.config.d_model, position_offset)
        positions = tt.Tensor(backend.to_device(positions.astype(tokens.dtype), tokens.device))
        return self.dropout(tokens + positions)

    def new_cache(self) -> list[LayerCache]:
        """Empty key/value caches, one per decoder layer, for incremental decoding."""
        return [LayerCache(nn.KVCache(), nn.KVCache()) for _ in self.decoder_layers]

    def loss(self, logits: tt.Tensor, targets, label_smoothing: float = 0.1) -> tt.Tensor:
        """Label-smoothed cross-entropy, mean over non-pad targets: logits [B, T, V], targets [B, T]."""
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), as_ids(targets, logits.device).reshape(-1),
                               ignore_index=self.config.pad_id, label_smoothing=label_smoothing)

    # ---- decoding --------------------------------------------------------------------------------------------------
    @tt.no_grad()
    def greedy_decode(self, src, max_new_tokens: int | None = None, use_cache: bool = True) -> list[list[int]]:
        """The most likely next token at every step, until EOS: one id list per source row (no BOS/EOS).

        Generates at most `max_new_tokens` (default: source length + 50, as the paper). use_cache=False recomputes
        the whole prefix each step (slower; the cached path must give the same tokens)."""
        src = as_input_ids(src, model_device(self))
        limit = _length_limit(src, max_new_tokens)
        with _evaluating(self):
            memory, src_keep = self.encode(src)
            cache = self.new_cache() if use_cache else None
            tokens = np.full((src.shape[0], 1), self.config.bos_id, dtype=np.int64)
            finished = np.zeros(src.shape[0], dtype=bool)
            for _ in range(limit):
                step_input = tokens[:, -1:] if use_cache else tokens
                logits = self.decode(self._on_device(step_input), memory, src_keep, cache)
                next_ids = np.where(finished, self.config.pad_id, logits[:, -1].argmax(dim=-1).numpy())
                tokens = np.concatenate([tokens, next_ids[:, None]], axis=1)
                finished |= next_ids == self.config.eos_id
                if finished.all():
                    break
        return [self._strip(row) for row in tokens[:, 1:]]

    @tt.no_grad()
    def beam_search(self, src, beam_size: int = 4, length_penalty: float = 0.6,
                    max_new_tokens: int | None = None) -> list[list[int]]:
        """Beam search with cached keys/values: one id list per source row (no BOS/EOS).

        Each step extends every live hypothesis by every token and keeps the `beam_size` best by summed log
        probability. A hypothesis that emits EOS stays in the beam with its score frozen (it can only be followed
        by pad, at no cost). At the end each one is ranked by log P(Y) / lp(Y), the GNMT length penalty
        lp(Y) = ((5 + |Y|)/6)^α (Wu et al. 2016; |Y| counts EOS), and the best is returned. Beam 1 is greedy."""
        src = as_input_ids(src, model_device(self))
        batch, limit, vocab = src.shape[0], _length_limit(src, max_new_tokens), self.config.tgt_vocab_size
        with _evaluating(self):
            memory, src_keep = self.encode(src)
            beam_rows = self._on_device(np.repeat(np.arange(batch), beam_size))  # row b·K + k: beam k of sentence b
            memory, src_keep = memory[beam_rows], src_keep[beam_rows.data]
            cache = self.new_cache()
            scores = np.full((batch, beam_size), -np.inf)
            scores[:, 0] = 0.0  # all beams start identical: expand only the first
            tokens = np.full((batch * beam_size, 1), self.config.bos_id, dtype=np.int64)
            finished = np.zeros(batch * beam_size, dtype=bool)
            lengths = np.zeros(batch * beam_size, dtype=np.int64)
            for _ in range(limit):
                logits = self.decode(self._on_device(tokens[:, -1:]), memory, src_keep, cache)[:, -1]
                step_scores = self._continuation_scores(logits, finished)                # [B·K, V]
                candidates = (scores.reshape(-1, 1) + step_scores).reshape(batch, beam_size * vocab)
                best = np.argsort(-candidates, axis=1, kind="stable")[:, :beam_size]       # [B, K]
                scores = np.take_along_axis(candidates, best, axis=1)
                origin = (np.arange(batch)[:, None] * beam_size + best // vocab).reshape(-1)
                next_ids = (best % vocab).reshape(-1)
                tokens = np.concatenate([tokens[origin], next_ids[:, None]], axis=1)
                lengths = lengths[origin] + ~finished[origin]
                finished = finished[origin] | (next_ids == self.config.eos_id)
                _reorder(cache, self._on_device(origin))
                if finished.all():
                    break
        normalized = scores / ((5.0 + lengths.reshape(batch, beam_size)) / 6.0) ** length_penalty
        winners = np.arange(batch) * beam_size + normalized.argmax(axis=1)
        return [self._strip(row) for row in tokens[winners, 1:]]

    def _continuation_scores(self, logits: tt.Tensor, finished: np.ndarray) -> np.ndarray:
        """log P(next token) [B·K, V]; a finished hypothesis may only continue with pad, at log-probability 0."""
        log_probs = F.log_softmax(logits, dim=-1).numpy().astype(np.float64)
        log_probs[finished] = -np.inf
        log_probs[finished, self.config.pad_id] = 0.0
        return log_probs

    def _strip(self, ids: np.ndarray) -> list[int]:
        """Generated ids up to (not including) the first EOS, pads dropped."""
        ids = ids.tolist()
        if self.config.eos_id in ids:
            ids = ids[:ids.index(self.config.eos_id)]
        return [i for i in ids if i != self.config.pad_id]

    def _on_device(self, ids: np.ndarray) -> tt.Tensor:
        return tt.tensor(ids, device=model_device(self))


def _reorder(cache: list[LayerCache], origin: tt.Tensor) -> None:
    """Make row i of every self-attention cache the old row origin[i] (beams that survived, duplicated or moved).
    Cross-attention caches need nothing: a sentence's beams all hold the same memory."""
    for layer_cache in cache:
        keys = layer_cache.self_attn
        keys.k, keys.v = keys.k[origin], keys.v[origin]


def _length_limit(src: tt.Tensor, max_new_tokens: int | None) -> int:
    return src.shape[1] + 50 if max_new_tokens is None else max_new_tokens


@contextmanager
def _evaluating(model: nn.Module):
    """Eval mode (no dropout) inside the block, the previous mode after it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)

