"""DeBERTa v2/v3 (He et al. 2021, "DeBERTaV3"; the v2 architecture of the DeBERTa repository), loadable from
Hugging Face (model_type `deberta-v2`, MODELS.md §5.1). DeBERTa-v3 checkpoints use this architecture.

Taken from other files (read models/bert.py, then models/deberta.py, first):
- models/deberta.py (v1): `DebertaEmbeddings` (word (+ position) (+ token type) → LayerNorm → pad rows zeroed),
  `query_key_mask`, the `lm_predictions` head (`DebertaOnlyMLMHead`) and `DebertaPreTrainedModel` (BERT's
  initialisation, the `deberta.` prefix, skipping unused position tables);
- models/bert.py: `BertSelfOutput` (attention.output), `BertIntermediate` + `BertOutput` (the feed-forward),
  `BertOnlyMLMHead` (legacy=true) and `masked_lm_loss`;
- models/classification.py: `DebertaClassificationConfig` (the classifier's config fields) and
  `add_deberta_classifier_head` (ContextPooler, dropout and classifier);
  models/hf.py: `EmbeddingsEntry` (the classifier's forward split for SiFT).

What v2 changes, all inside the encoder (the classes here carry the `DebertaV2` prefix where v1 has a class of the
same role, so no name means two things):

- projections: separate `query_proj`, `key_proj`, `value_proj`, each with a bias (v1: one interleaved `in_proj`);
- scaling: the content keys, and the c2p and p2c terms after their gather, are each divided by √(d·sf),
  sf = 1 + [c2p] + [p2c] (v1 divides the query);
- `share_att_key`: the relative keys and queries come from `key_proj` / `query_proj` applied to R (v1: separate
  `pos_proj`, `pos_q_proj`; v2 without sharing: `pos_key_proj`, `pos_query_proj`, both with bias);
- `position_buckets` > 0: log-bucketed relative positions (``log_bucket_position``, ``bucketed_relative_index``):
  distances up to mid = buckets/2 keep their value, longer ones share buckets that grow logarithmically up to
  max_relative_positions; R = `encoder.rel_embeddings` has 2·buckets rows (else 2·mrp) and is used whole (v1
  slices it around its centre);
- `norm_rel_ebd = "layer_norm"`: R goes through `encoder.LayerNorm` before every layer uses it;
- `conv_kernel_size` > 0: a convolution over positions (``ConvLayer``) on the embeddings, added to layer 0's output
  and normalized: `encoder.conv.conv` (a Conv1d, weight [H, H, k]) and `encoder.conv.LayerNorm`;
- LayerNorm is torch's everywhere (v1's computes in float32), so Hugging Face's float64 is exact except for the
  √(d·sf) it computes in float32 (its fixture patches that).

The bucket arithmetic runs in float32 as in Hugging Face (the buckets are integers, the same in any model dtype).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.bert import BertIntermediate, BertOnlyMLMHead, BertOutput, BertSelfOutput, masked_lm_loss
from models.classification import DebertaClassificationConfig, add_deberta_classifier_head
from models.deberta import DebertaEmbeddings, DebertaOnlyMLMHead, DebertaPreTrainedModel, query_key_mask
from models.hf import ACTIVATIONS, EmbeddingsEntry, as_attention_mask, as_ids, as_input_ids, model_device


@dataclass
class DebertaV2Config(DebertaClassificationConfig):
    """Hugging Face's DebertaV2Config fields (its defaults), the keys it reads through getattr (position_buckets,
    share_att_key, norm_rel_ebd, conv_kernel_size, conv_act, conv_groups) and the classifier's (num_labels,
    pooler_*, cls_dropout). Rejected by name: conv_groups ≠ 1, an even conv_kernel_size, the enhanced mask decoder."""

    vocab_size: int = 128100
    hidden_size: int = 1536
    num_hidden_layers: int = 24
    num_attention_heads: int = 24
    intermediate_size: int = 6144
    position_buckets: int = -1
    share_att_key: bool = False
    norm_rel_ebd: str = "none"
    conv_kernel_size: int = 0
    conv_act: str = "tanh"
    conv_groups: int = 1

    model_type = "deberta-v2"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.conv_kernel_size > 0 and (self.conv_groups != 1 or self.conv_kernel_size % 2 == 0):
            raise ValueError(f"DebertaV2Config: conv_groups {self.conv_groups} / conv_kernel_size "
                             f"{self.conv_kernel_size} are not supported (groups 1 and an odd kernel only)")
        if self.conv_act not in ACTIVATIONS:
            raise ValueError(f"DebertaV2Config: conv_act {self.conv_act!r} is not supported "
                             f"(supported: {', '.join(ACTIVATIONS)})")
        if self.enhanced_mask_decoder:
            raise ValueError("DebertaV2Config: enhanced_mask_decoder is not supported for v2")

    @property
    def relative_span(self) -> int:
        """att_span: rows of R on each side of distance 0 (position_buckets if bucketed, else mrp)."""
        mrp = self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings
        return self.position_buckets if self.position_buckets > 0 else mrp

    @property
    def max_relative(self) -> int:
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings


def log_bucket_position(relative: numpy.ndarray, bucket_size: int, max_position: int) -> numpy.ndarray:
    """Hugging Face's make_log_bucket_position (float32, as there): |r| ≤ mid = bucket_size/2 keeps r; beyond,
    sign(r)·(ceil(log(|r|/mid) / log((max_position − 1)/mid) · (mid − 1)) + mid)."""
    mid = bucket_size // 2
    sign = numpy.sign(relative)
    abs_pos = numpy.where((relative < mid) & (relative > -mid), mid - 1, numpy.abs(relative))
    ratio = numpy.log(abs_pos.astype(numpy.float32) / numpy.float32(mid)) \
        / numpy.log(numpy.float32((max_position - 1) / mid))
    log_pos = numpy.ceil(ratio * numpy.float32(mid - 1)) + numpy.float32(mid)
    return numpy.where(abs_pos <= mid, relative, log_pos * sign).astype(numpy.int64)


def bucketed_relative_index(time: int, span: int, buckets: int, max_position: int) -> numpy.ndarray:
    """δ(i, j) = clip(bucket(i − j) + span, 0, 2·span − 1) [T, T]: the row of R for query i and key j (the same
    index serves c2p and p2c; bucketing is odd, so p2c's −bucket(j − i) is bucket(i − j))."""
    positions = numpy.arange(time)
    relative = positions[:, None] - positions[None, :]
    if buckets > 0 and max_position > 0:
        relative = log_bucket_position(relative, buckets, max_position)
    return numpy.clip(relative + span, 0, 2 * span - 1)


class DebertaV2DisentangledSelfAttention(nn.Module):
    """v2's disentangled attention: content-to-content + c2p + p2c, each divided by √(d·sf) (see the docstring)."""

    def __init__(self, config: DebertaV2Config):
        super().__init__()
        self.num_heads, hidden = config.num_attention_heads, config.hidden_size
        self.query_proj = nn.Linear(hidden, hidden)
        self.key_proj = nn.Linear(hidden, hidden)
        self.value_proj = nn.Linear(hidden, hidden)
        self.share_att_key = config.share_att_key
        self.pos_att_type = config.pos_att_type if config.relative_attention else []
        self.span = config.relative_span
        self.scale = math.sqrt(hidden // self.num_heads * (1 + len(config.pos_att_type)))
        if self.pos_att_type and not self.share_att_key:
            if "c2p" in self.pos_att_type:
                self.pos_key_proj = nn.Linear(hidden, hidden)
            if "p2c" in self.pos_att_type:
                self.pos_query_proj = nn.Linear(hidden, hidden)
        self.pos_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def heads(self, x: tt.Tensor) -> tt.Tensor:
        """[..., T, nh·d] → [..., nh, T, d]."""
        return x.reshape(*x.shape[:-1], self.num_heads, -1).transpose(-3, -2)

    def forward(self, x: tt.Tensor, keep=None, rel_embeddings=None, index=None) -> tt.Tensor:
        """x [B, T, H] → [B, T, H]; keep bool [B, 1, T, T] or None; R [2·span, H]; index δ [T, T] (device array)."""
        query, key, value = (self.heads(proj(x)) for proj in (self.query_proj, self.key_proj, self.value_proj))
        scores = query @ (key.transpose(-1, -2) / self.scale)              # content-to-content [B, nh, T, T]
        if self.pos_att_type:
            scores = scores + self.relative_scores(query, key, self.pos_dropout(rel_embeddings), index)
        if keep is not None:
            scores = tt.where(keep, scores, float(numpy.finfo(scores.data.dtype).min))
        probs = self.dropout(F.softmax(scores, dim=-1))
        context = probs @ value
        return context.transpose(-3, -2).reshape(*x.shape[:-1], -1)

    def relative_scores(self, query: tt.Tensor, key: tt.Tensor, rel_embeddings: tt.Tensor, index) -> tt.Tensor:
        """c2p[i, j] = q_i · Kr[δ(i, j)] / √(d·sf) plus p2c[i, j] = k_j · Qr[δ(i, j)] / √(d·sf); [B, nh, T, T]."""
        table = rel_embeddings[:2 * self.span]
        xp, batch_heads = query.xp, query.shape[:-2]
        total = 0
        if "c2p" in self.pos_att_type:
            rel_keys = self.heads((self.key_proj if self.share_att_key else self.pos_key_proj)(table))
            by_distance = query @ rel_keys.transpose(-1, -2)                # [B, nh, T (query i), 2·span]
            total = total + by_distance.gather(-1, xp.broadcast_to(index, batch_heads + index.shape)) / self.scale
        if "p2c" in self.pos_att_type:
            rel_queries = self.heads((self.query_proj if self.share_att_key else self.pos_query_proj)(table))
            by_distance = key @ rel_queries.transpose(-1, -2)               # [B, nh, T (key j), 2·span]
            by_key = by_distance.gather(-1, xp.broadcast_to(index.T, batch_heads + index.shape))
            total = total + by_key.transpose(-1, -2) / self.scale
        return total


class DebertaV2Attention(nn.Module):
    """`attention.self` then `attention.output` (BERT's dense, residual, LayerNorm)."""

    def __init__(self, config: DebertaV2Config):
        super().__init__()
        self.self = DebertaV2DisentangledSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x, keep=None, rel_embeddings=None, index=None) -> tt.Tensor:
        return self.output(self.self(x, keep, rel_embeddings, index), x)


class DebertaV2Layer(nn.Module):
    """One post-norm block: disentangled attention, then BERT's feed-forward sub-layer."""

    def __init__(self, config: DebertaV2Config):
        super().__init__()
        self.attention = DebertaV2Attention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x, keep=None, rel_embeddings=None, index=None) -> tt.Tensor:
        attended = self.attention(x, keep, rel_embeddings, index)
        return self.output(self.intermediate(attended), attended)


class Conv1d(nn.Module):
    """torch's Conv1d over positions with 'same' padding (odd kernel, groups 1), on [B, T, C] inputs:
    out[t] = Σ_k W[:, :, k] · x[t + k − (K−1)/2] + b, weight [C_out, C_in, K] as torch stores it."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        bound = 1 / math.sqrt(channels * kernel_size)
        self.weight = nn.Parameter(tt.rand(channels, channels, kernel_size).data * 2 * bound - bound)
        self.bias = nn.Parameter(tt.zeros(channels).data)

    def forward(self, x: tt.Tensor) -> tt.Tensor:
        kernel, time = self.weight.shape[-1], x.shape[1]
        padded = F.pad(x, (0, 0, (kernel - 1) // 2, (kernel - 1) // 2)) if kernel > 1 else x
        out = self.bias
        for k in range(kernel):
            out = out + padded[:, k:k + time] @ self.weight[:, :, k].T
        return out


class ConvLayer(nn.Module):
    """`encoder.conv`: LayerNorm(layer-0 output + act(conv(embeddings)) with pad rows zeroed) · mask."""

    def __init__(self, config: DebertaV2Config):
        super().__init__()
        self.conv = Conv1d(config.hidden_size, config.conv_kernel_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.activation = ACTIVATIONS[config.conv_act]

    def forward(self, embedded: tt.Tensor, residual: tt.Tensor, mask: tt.Tensor) -> tt.Tensor:
        """embedded, residual [B, T, H]; mask [B, T, 1] in the model's dtype (1 = token)."""
        out = self.activation(self.dropout(self.conv(embedded) * mask))
        return self.LayerNorm(residual + out) * mask


class DebertaV2Encoder(nn.Module):
    """`encoder.layer.{i}`, `encoder.rel_embeddings` [2·span, H], `encoder.LayerNorm` (norm_rel_ebd) and
    `encoder.conv` (conv_kernel_size > 0)."""

    def __init__(self, config: DebertaV2Config):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([DebertaV2Layer(config) for _ in range(config.num_hidden_layers)])
        self.rel_embeddings = (nn.Embedding(2 * config.relative_span, config.hidden_size)
                               if config.relative_attention else None)
        norm = [part.strip() for part in config.norm_rel_ebd.lower().split("|")]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if "layer_norm" in norm else None
        self.conv = ConvLayer(config) if config.conv_kernel_size > 0 else None

    def rel_table(self) -> tt.Tensor | None:
        """R, through encoder.LayerNorm when norm_rel_ebd says so."""
        if self.rel_embeddings is None:
            return None
        table = self.rel_embeddings.weight
        return self.LayerNorm(table) if self.LayerNorm is not None else table

    def forward(self, x: tt.Tensor, keep=None, attention_mask=None) -> list[tt.Tensor]:
        """Every layer's output [B, T, H]; attention_mask [B, T] (Tensor or None) feeds the conv layer."""
        table, index = self.rel_table(), None
        if table is not None:
            host = bucketed_relative_index(x.shape[1], self.config.relative_span, self.config.position_buckets,
                                           self.config.max_relative)
            index = x.xp.asarray(host)
        states, hidden = [], x
        for number, layer in enumerate(self.layer):
            hidden = layer(hidden, keep, table, index)
            if number == 0 and self.conv is not None:
                mask = (attention_mask.data[..., None] if attention_mask is not None
                        else x.xp.ones(x.shape[:2] + (1,)))
                hidden = self.conv(x, hidden, tt.tensor(mask, dtype=x.dtype, device=x.device))
            states.append(hidden)
        return states


class DebertaV2PreTrainedModel(DebertaPreTrainedModel):
    """The v2 config, the `deberta.` prefix and BERT's initialisation (as v1)."""

    config_class = DebertaV2Config


class DebertaV2Model(DebertaV2PreTrainedModel):
    """The trunk (no pooler): forward returns last_hidden_state [B, T, H]."""

    def __init__(self, config: DebertaV2Config):
        super().__init__()
        self.config = config
        self.embeddings = DebertaEmbeddings(config)
        self.encoder = DebertaV2Encoder(config)
        self.apply(self._init_weights)
        self._skip_unused_positions()

    def embed(self, input_ids, token_type_ids=None, attention_mask=None) -> tuple[tt.Tensor, object]:
        """(embeddings [B, T, H], the mask as an integer Tensor or None)."""
        input_ids = as_input_ids(input_ids, model_device(self))
        if token_type_ids is not None:
            token_type_ids = as_ids(token_type_ids, input_ids.device)
        mask = as_attention_mask(attention_mask, input_ids)
        return self.embeddings(input_ids, token_type_ids, mask), mask

    def encode(self, embedded: tt.Tensor, mask) -> tt.Tensor:
        """[B, T, H] embeddings → the last layer's output [B, T, H]."""
        keep = query_key_mask(mask, embedded)
        return self.encoder(embedded, keep, mask)[-1]

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        """input_ids, token_type_ids, attention_mask [B, T] → [B, T, H]."""
        return self.encode(*self.embed(input_ids, token_type_ids, attention_mask))


class DebertaV2ForMaskedLM(DebertaV2PreTrainedModel):
    """DeBERTa-v2 with a masked-LM head, laid out as v1's: legacy=true → `cls.predictions` tied to the word
    embeddings; legacy=false → `lm_predictions.lm_head`. forward → logits [B, T, V]; `loss` as BERT's."""

    def __init__(self, config: DebertaV2Config):
        super().__init__()
        self.config = config
        self.deberta = DebertaV2Model(config)
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
        hidden = self.deberta(input_ids, token_type_ids, attention_mask)
        if self.config.legacy:
            return self.cls(hidden)
        return self.lm_predictions(hidden, self.deberta.embeddings.word_embeddings.weight)

    loss = staticmethod(masked_lm_loss)


class DebertaV2ForSequenceClassification(EmbeddingsEntry, DebertaV2PreTrainedModel):
    """DeBERTa-v2 with `pooler` (ContextPooler) and `classifier`, as transformers' class: reads base and
    masked-LM checkpoints (skipping `cls.*` / `lm_predictions.*`); pooler and classifier start fresh if absent.
    `embed` / `forward_embeddings` split the forward for SiFT (`EmbeddingsEntry`, models/hf.py)."""

    hf_ignored = (r"^cls\.", r"^lm_predictions\.")
    hf_fresh = (r"^pooler\.", r"^classifier\.")

    def __init__(self, config: DebertaV2Config):
        super().__init__()
        self.config = config
        self.deberta = DebertaV2Model(config)
        add_deberta_classifier_head(self, config)

    def embed(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        return self.deberta.embed(input_ids, token_type_ids, attention_mask)[0]

    def forward_embeddings(self, embedded: tt.Tensor, attention_mask=None) -> tt.Tensor:
        hidden = self.deberta.encode(embedded, as_attention_mask(attention_mask, embedded))
        return self.classifier(self.dropout(self.pooler(hidden)))
