"""DeBERTa v1 (He et al. 2020, "DeBERTa: Decoding-enhanced BERT with Disentangled Attention"), loadable from
Hugging Face (model_type `deberta`, MODELS.md §5).

BERT's post-norm encoder (models/bert.py) with position information moved out of the input and into attention.
Each token keeps its content vector, and each *relative* distance i − j owns a vector in a shared table
R = `encoder.rel_embeddings` [2·mrp, H]. The attention score of query i and key j sums three terms (eq. 2-4):

    content-to-content    q_i · k_j                  (BERT's score)
    content-to-position   q_i · Kr[δ(i, j)]          "c2p": does the content of i care about keys at that distance
    position-to-content   k_j · Qr[δ(i, j)]          "p2c": does the content of j care about queries at that distance

with Kr = R·pos_projᵀ, Qr = R·pos_q_projᵀ + b and δ(i, j) = clip(i − j, −mrp, mrp − 1) + mrp (eq. 3: distances
beyond max_relative_positions share the end rows), all divided by √(3d) (eq. 4, one √d per term). The paper
writes p2c with δ(j, i); we follow the official code and Hugging Face, which index both terms with δ(i, j).

    e = LayerNorm(word[ids] (+ position[arange(T)] + token_type[tt])) · mask       [B, T, H]
    a = LayerNorm(h + dense(disentangled_attention(h, R)))   } × num_hidden_layers
    h = LayerNorm(a + dense(act(intermediate(a))))           }
    logits = head(h)                                                                [B, T, V]

Differences from BERT: `in_proj` is one bias-free Linear whose rows are *interleaved per head* (q_h, k_h, v_h),
with separate `q_bias`, `v_bias` and no key bias; `attention_mask` masks padded queries *and* keys and zeroes pad
embeddings; absolute positions enter the input only with `position_biased_input`; LayerNorm eps is 1e-7; there
is no pooler. Hugging Face's DebertaLayerNorm computes in float32 even for float64 models; ours computes in the
model's dtype (identical in float32, exact in float64).

Heads: `legacy=true` (transformers' default) is BERT's `cls.predictions` head, its decoder tied to the word
embeddings; `legacy=false` is the original checkpoints' `lm_predictions.lm_head` (dense → act → LayerNorm, then
·wordᵀ + bias). `enhanced_mask_decoder=true` adds the paper's Enhanced Mask Decoder (§3.2), which goes beyond
Hugging Face (whose DebertaModel never runs it): absolute positions are added to the penultimate layer's output,
and the last layer runs twice more (shared weights) with that as its query and the penultimate output as keys and
values, before the head. It needs `position_biased_input=false` and a `position_embeddings` table (saved under
transformers' name, which transformers skips on load).

Taken from models/bert.py (read it first): the output sub-layers `BertSelfOutput` (attention.output) and
`BertIntermediate` + `BertOutput` (the feed-forward), `BertPreTrainedModel`'s initialisation, the masked-LM heads
(`BertOnlyMLMHead` for legacy=true, `BertPredictionHeadTransform` under `lm_predictions.lm_head`) and
`masked_lm_loss`. Everything about positions (the embeddings, the relative table, `DisentangledSelfAttention`,
the query-and-key mask, the Enhanced Mask Decoder) is DeBERTa's own and lives here; models/deberta_v2.py builds
on this file, and the sequence classifier (with Hugging Face's ContextPooler) is in models/classification.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.bert import (BertIntermediate, BertOnlyMLMHead, BertOutput, BertPredictionHeadTransform,
                         BertPreTrainedModel, BertSelfOutput, masked_lm_loss)
from models.hf import (ACTIVATIONS, PretrainedModel, as_attention_mask, as_ids, as_input_ids, key_padding_mask,
                       model_device)


@dataclass
class DebertaConfig:
    """Hugging Face's DebertaConfig fields that define the model; the defaults are Hugging Face's.

    `pos_att_type` may be a list (["c2p", "p2c"]) or the older string "c2p|p2c"; max_relative_positions < 1
    means max_position_embeddings. `enhanced_mask_decoder` is ours (transformers ignores the key). Rejected by
    name: embedding_size ≠ hidden_size, talking_head, an unknown pos_att_type entry or hidden_act."""

    vocab_size: int = 50265
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-7
    relative_attention: bool = False
    max_relative_positions: int = -1
    pad_token_id: int | None = 0
    position_biased_input: bool = True
    pos_att_type: list | str | None = None
    embedding_size: int | None = None
    talking_head: bool = False
    legacy: bool = True
    tie_word_embeddings: bool = True
    enhanced_mask_decoder: bool = False

    model_type = "deberta"

    def __post_init__(self) -> None:
        if isinstance(self.pos_att_type, str):
            self.pos_att_type = [part.strip() for part in self.pos_att_type.lower().split("|")]
        self.pos_att_type = list(self.pos_att_type or [])
        if unknown := [kind for kind in self.pos_att_type if kind not in ("c2p", "p2c")]:
            raise ValueError(f"DebertaConfig: pos_att_type {unknown} is not supported (only 'c2p' and 'p2c')")
        self.embedding_size = self.hidden_size if self.embedding_size is None else self.embedding_size
        if self.embedding_size != self.hidden_size:
            raise ValueError(f"DebertaConfig: embedding_size {self.embedding_size} != hidden_size is not supported")
        if self.talking_head:
            raise ValueError("DebertaConfig: talking_head=True is not supported")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"DebertaConfig: hidden_act {self.hidden_act!r} is not supported "
                             f"(supported: {', '.join(ACTIVATIONS)})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"DebertaConfig: hidden_size {self.hidden_size} must be a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.enhanced_mask_decoder and self.position_biased_input:
            raise ValueError("DebertaConfig: enhanced_mask_decoder needs position_biased_input=false (the official "
                             "code skips the decoder when absolute positions are already in the input)")

    @property
    def relative_span(self) -> int:
        """mrp: relative distances are clipped to [−mrp, mrp − 1]; R has 2·mrp rows."""
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings


def query_key_mask(attention_mask, like: tt.Tensor):
    """attention_mask [B, T] (1 = token) → boolean keep mask [B, 1, T, T], True where query i and key j are both
    real (m_i·m_j, as DeBERTa masks), or None."""
    keys = key_padding_mask(attention_mask, like)                                     # [B, 1, 1, T]
    return None if keys is None else keys & keys.swapaxes(-1, -2)


def relative_index(xp, time: int, span: int):
    """δ(i, j) = clip(i − j + span, 0, 2·span − 1) [T, T]: the row of the (sliced) table for query i, key j."""
    positions = xp.arange(time)
    return xp.clip(positions[:, None] - positions[None, :] + span, 0, 2 * span - 1)


class DebertaEmbeddings(nn.Module):
    """word[ids] (+ position[arange(T)] if position_biased_input) (+ token_type[tt] if type_vocab_size > 0)
    → LayerNorm → zero the pad positions → dropout. The position table also exists for the enhanced mask decoder."""

    def __init__(self, config: DebertaConfig):
        super().__init__()
        self.position_biased_input = config.position_biased_input
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        with_positions = config.position_biased_input or config.enhanced_mask_decoder
        self.position_embeddings = (nn.Embedding(config.max_position_embeddings, config.hidden_size)
                                    if with_positions else None)
        self.token_type_embeddings = (nn.Embedding(config.type_vocab_size, config.hidden_size)
                                      if config.type_vocab_size > 0 else None)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.max_positions = config.max_position_embeddings

    def forward(self, input_ids: tt.Tensor, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        time = input_ids.shape[1]
        if time > self.max_positions:
            raise ValueError(f"sequence length {time} exceeds max_position_embeddings {self.max_positions}")
        embeddings = self.word_embeddings(input_ids)
        if self.position_biased_input:
            embeddings = embeddings + self.position_embeddings(tt.arange(time, device=input_ids.device))
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = tt.zeros(input_ids.shape, dtype=input_ids.dtype, device=input_ids.device)
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        embeddings = self.LayerNorm(embeddings)
        if attention_mask is not None:                                  # pad positions start as zero vectors
            embeddings = embeddings * tt.tensor(attention_mask.data[..., None], dtype=embeddings.dtype,
                                                device=embeddings.device)
        return self.dropout(embeddings)


class DisentangledSelfAttention(nn.Module):
    """Multi-head attention whose scores add the c2p and p2c relative-position terms (He et al. 2020, eq. 4)."""

    def __init__(self, config: DebertaConfig):
        super().__init__()
        self.num_heads, hidden = config.num_attention_heads, config.hidden_size
        self.pos_att_type = config.pos_att_type if config.relative_attention else []
        self.span = config.relative_span
        # eq. 4 divides by √(3d) for c2p|p2c; transformers counts pos_att_type entries even without relative_attention
        self.scale = math.sqrt(hidden // self.num_heads * (1 + len(config.pos_att_type)))
        self.in_proj = nn.Linear(hidden, 3 * hidden, bias=False)        # rows: q_0 k_0 v_0 q_1 k_1 v_1 … (per head)
        self.q_bias = nn.Parameter(tt.zeros(hidden).data)
        self.v_bias = nn.Parameter(tt.zeros(hidden).data)
        if "c2p" in self.pos_att_type:
            self.pos_proj = nn.Linear(hidden, hidden, bias=False)       # R → relative keys Kr
        if "p2c" in self.pos_att_type:
            self.pos_q_proj = nn.Linear(hidden, hidden)                 # R → relative queries Qr
        self.pos_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def heads(self, x: tt.Tensor) -> tt.Tensor:
        """[..., T, nh·w] → [..., nh, T, w]: head h owns features [h·w, (h+1)·w)."""
        return x.reshape(*x.shape[:-1], self.num_heads, -1).transpose(-3, -2)

    def forward(self, x: tt.Tensor, keep=None, rel_embeddings=None, query_states=None) -> tt.Tensor:
        """x [B, T, H] (keys and values; queries too unless query_states [B, T, H] is given) → [B, T, H].
        keep: bool [B, 1, T, T] (True = query and key both real) or None; rel_embeddings: R [2·mrp, H]."""
        if query_states is None:
            query, key, value = self.heads(self.in_proj(x)).chunk(3, dim=-1)          # each [B, nh, T, d]
        else:  # the enhanced mask decoder: queries from query_states, keys and values from x
            weight = self.in_proj.weight.reshape(self.num_heads, 3, -1, x.shape[-1])  # [nh, q|k|v, d, H]
            query, key, value = (self.heads(F.linear(states, weight[:, part].reshape(-1, x.shape[-1])))
                                 for part, states in enumerate((query_states, x, x)))
        query = (query + self.heads(self.q_bias.reshape(1, -1))) / self.scale  # q′ = (q + b_q)/√(3d), eq. 4
        value = value + self.heads(self.v_bias.reshape(1, -1))
        scores = query @ key.transpose(-1, -2)                          # content-to-content [B, nh, T, T]
        if self.pos_att_type:
            scores = scores + self.relative_scores(query, key, self.pos_dropout(rel_embeddings))
        if keep is not None:
            scores = tt.where(keep, scores, float(numpy.finfo(scores.data.dtype).min))
        probs = self.dropout(F.softmax(scores, dim=-1))
        context = probs @ value                                         # [B, nh, T, d]
        return context.transpose(-3, -2).reshape(*x.shape[:-1], -1)

    def relative_scores(self, query: tt.Tensor, key: tt.Tensor, rel_embeddings: tt.Tensor) -> tt.Tensor:
        """c2p + p2c [B, nh, T, T] (eq. 4's 2nd and 3rd terms). Only the 2·span rows of R around its centre can be
        reached at length T (span = min(T, mrp)); on them δ(i, j) = clip(i − j + span, 0, 2·span − 1)."""
        time = query.shape[-2]
        span = min(time, self.span)
        table = rel_embeddings[self.span - span:self.span + span]       # [2·span, H]
        xp, batch_heads = query.xp, query.shape[:-2]
        index = relative_index(xp, time, span)                          # δ(i, j) [T, T]
        total = 0
        if "c2p" in self.pos_att_type:   # content-to-position: c2p[i, j] = q′_i · Kr[δ(i, j)]
            rel_keys = self.heads(self.pos_proj(table))                 # Kr [nh, 2·span, d]
            query_by_distance = query @ rel_keys.transpose(-1, -2)      # [B, nh, T (query i), 2·span]
            total = total + query_by_distance.gather(-1, xp.broadcast_to(index, batch_heads + index.shape))
        if "p2c" in self.pos_att_type:   # position-to-content: p2c[i, j] = k_j · Qr[δ(i, j)] / √(3d)
            rel_queries = self.heads(self.pos_q_proj(table)) / self.scale  # Qr [nh, 2·span, d]
            key_by_distance = key @ rel_queries.transpose(-1, -2)         # [B, nh, T (key j), 2·span]
            # row j, column i of index.T is δ(i, j): gather per key j, then transpose to [i, j]
            by_key = key_by_distance.gather(-1, xp.broadcast_to(index.T, batch_heads + index.shape))
            total = total + by_key.transpose(-1, -2)
        return total


class DebertaAttention(nn.Module):
    """`attention.self` (disentangled heads) then `attention.output` (BERT's projection, residual, LayerNorm);
    the residual is the query's input."""

    def __init__(self, config: DebertaConfig):
        super().__init__()
        self.self = DisentangledSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x, keep=None, rel_embeddings=None, query_states=None) -> tt.Tensor:
        residual = x if query_states is None else query_states
        return self.output(self.self(x, keep, rel_embeddings, query_states), residual)


class DebertaLayer(nn.Module):
    """One post-norm block: disentangled attention, then BERT's feed-forward sub-layer."""

    def __init__(self, config: DebertaConfig):
        super().__init__()
        self.attention = DebertaAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x, keep=None, rel_embeddings=None, query_states=None) -> tt.Tensor:
        attended = self.attention(x, keep, rel_embeddings, query_states)
        return self.output(self.intermediate(attended), attended)


class DebertaEncoder(nn.Module):
    """`encoder.layer.{i}` and the shared relative-position table `encoder.rel_embeddings` [2·mrp, H]."""

    def __init__(self, config: DebertaConfig):
        super().__init__()
        self.layer = nn.ModuleList([DebertaLayer(config) for _ in range(config.num_hidden_layers)])
        self.rel_embeddings = (nn.Embedding(2 * config.relative_span, config.hidden_size)
                               if config.relative_attention else None)

    def rel_table(self) -> tt.Tensor | None:
        return self.rel_embeddings.weight if self.rel_embeddings is not None else None

    def forward(self, x: tt.Tensor, keep=None) -> list[tt.Tensor]:
        """Every layer's output, [B, T, H] each (the enhanced mask decoder reads the penultimate one)."""
        states = []
        for layer in self.layer:
            x = layer(x, keep, self.rel_table())
            states.append(x)
        return states


class DebertaPreTrainedModel(PretrainedModel):
    """The config, the `deberta.` prefix and BERT's initialisation (N(0, initializer_range), zero biases and
    pad row; q_bias, v_bias and head biases start at zero)."""

    config_class = DebertaConfig
    base_model_prefix = "deberta"
    _init_weights = BertPreTrainedModel._init_weights

    def _skip_unused_positions(self) -> None:
        """Files of models without absolute positions may still carry `position_embeddings` (the original
        checkpoints do); transformers skips them, and so do we when this model has no such table."""
        embeddings = self.deberta.embeddings if hasattr(self, "deberta") else self.embeddings
        if embeddings.position_embeddings is None:
            self.hf_ignored = (*type(self).hf_ignored, r"(^|\.)embeddings\.position_embeddings\.")


class DebertaModel(DebertaPreTrainedModel):
    """The DeBERTa trunk (no pooler): forward returns last_hidden_state [B, T, H]; `hidden_states` returns every
    layer's output. Loading a head checkpoint keeps its `deberta.*` keys only."""

    def __init__(self, config: DebertaConfig):
        super().__init__()
        self.config = config
        self.embeddings = DebertaEmbeddings(config)
        self.encoder = DebertaEncoder(config)
        self.apply(self._init_weights)
        self._skip_unused_positions()

    def hidden_states(self, input_ids, token_type_ids=None, attention_mask=None) -> tuple[list[tt.Tensor], object]:
        """([embeddings, layer 1, …, layer L] each [B, T, H], the keep mask [B, 1, T, T] or None)."""
        input_ids = as_input_ids(input_ids, model_device(self))
        if token_type_ids is not None:
            token_type_ids = as_ids(token_type_ids, input_ids.device)
        mask = as_attention_mask(attention_mask, input_ids)
        keep = query_key_mask(mask, input_ids)
        embedded = self.embeddings(input_ids, token_type_ids, mask)
        return [embedded, *self.encoder(embedded, keep)], keep

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        """input_ids, token_type_ids, attention_mask [B, T] (numpy arrays or integer Tensors) → [B, T, H]."""
        return self.hidden_states(input_ids, token_type_ids, attention_mask)[0][-1]


class DebertaLMPredictionHead(BertPredictionHeadTransform):
    """`lm_predictions.lm_head` (legacy=false): LayerNorm(act(dense(h)))·wordᵀ + bias, no decoder of its own."""

    def __init__(self, config: DebertaConfig):
        super().__init__(config)
        self.bias = nn.Parameter(tt.zeros(config.vocab_size).data)

    def forward(self, hidden: tt.Tensor, word_embeddings: tt.Tensor) -> tt.Tensor:
        return super().forward(hidden) @ word_embeddings.T + self.bias


class DebertaOnlyMLMHead(nn.Module):
    """`lm_predictions` of DebertaForMaskedLM with legacy=false."""

    def __init__(self, config: DebertaConfig):
        super().__init__()
        self.lm_head = DebertaLMPredictionHead(config)

    def forward(self, hidden: tt.Tensor, word_embeddings: tt.Tensor) -> tt.Tensor:
        return self.lm_head(hidden, word_embeddings)


class DebertaForMaskedLM(DebertaPreTrainedModel):
    """DeBERTa with a masked-LM head: forward returns logits [B, T, V]; `loss(logits, labels)` is the mean cross
    entropy over labels ≠ −100. legacy=true: BERT's `cls.predictions` head, tied to the word embeddings (the file
    omits `cls.predictions.decoder.*`); legacy=false: `lm_predictions.lm_head`, nothing tied."""

    def __init__(self, config: DebertaConfig):
        super().__init__()
        self.config = config
        self.deberta = DebertaModel(config)
        if config.legacy:
            self.cls = BertOnlyMLMHead(config)
            self.cls.apply(self._init_weights)
            self.hf_tied = {"cls.predictions.decoder.weight": "deberta.embeddings.word_embeddings.weight",
                            "cls.predictions.decoder.bias": "cls.predictions.bias"}
            if config.tie_word_embeddings:
                self.cls.predictions.decoder.weight = self.deberta.embeddings.word_embeddings.weight
                self.cls.predictions.decoder.bias = self.cls.predictions.bias
        else:
            self.lm_predictions = DebertaOnlyMLMHead(config)
            self.lm_predictions.apply(self._init_weights)
        self._skip_unused_positions()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        states, keep = self.deberta.hidden_states(input_ids, token_type_ids, attention_mask)
        hidden = self.enhanced_mask_decoder(states, keep) if self.config.enhanced_mask_decoder else states[-1]
        if self.config.legacy:
            return self.cls(hidden)
        return self.lm_predictions(hidden, self.deberta.embeddings.word_embeddings.weight)

    def enhanced_mask_decoder(self, states: list[tt.Tensor], keep) -> tt.Tensor:
        """The paper's EMD (§3.2, as microsoft/DeBERTa's masked_language_model.py): the query starts as the
        penultimate output plus absolute position embeddings, and the last layer runs twice with shared weights,
        keys and values from the penultimate output, each output becoming the next query. [B, T, H]."""
        context = states[-2]
        embeddings, encoder = self.deberta.embeddings, self.deberta.encoder
        query = context + embeddings.position_embeddings(tt.arange(context.shape[1], device=context.device))
        for _ in range(2):
            query = encoder.layer[-1](context, keep, encoder.rel_table(), query_states=query)
        return query

    loss = staticmethod(masked_lm_loss)
