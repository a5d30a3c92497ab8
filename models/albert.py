"""ALBERT (Lan et al. 2019, "ALBERT: A Lite BERT for Self-supervised Learning of Language Representations"),
loadable from Hugging Face.

BERT's post-norm encoder (models/bert.py, MODELS.md §4) with the paper's two parameter reductions:

- factorized embeddings (§3.1): tokens are embedded at a small width E = embedding_size, then one Linear
  (`encoder.embedding_hidden_mapping_in`) maps them to H = hidden_size, so the vocabulary costs V·E + E·H
  parameters instead of V·H;
- cross-layer parameter sharing (§3.1): the num_hidden_layers steps reuse num_hidden_groups groups of
  inner_group_num layers each. Step i runs group int(i / (L / G)) (Hugging Face's float division, then
  truncation), so with the default G = 1 one set of layer weights serves every step, and its gradient is the
  sum of the gradients of all its uses (the autograd engine accumulates them; the tests check it).

    e = LayerNorm(word[ids] + position[arange(T)] + token_type[tt])               [B, T, E]
    h = embedding_hidden_mapping_in(e)                                            [B, T, H]
    a = attention.LayerNorm(h + attention.dense(attention(h)))           } step i uses the layers of
    h = full_layer_layer_norm(a + ffn_output(act(ffn(a))))               } group int(i / (L / G))
    pooled = tanh(pooler(h[:, 0]))                                                [B, H]

Heads, in Hugging Face's names (top level, no `cls.`): `predictions` (masked LM: dense H → E → act →
LayerNorm(E) → decoder tied to the [V, E] word embeddings, + `predictions.bias`) and `sop_classifier`
(sentence-order prediction on the pooled output, the paper's §4.1 replacement for BERT's next-sentence task).
hidden_act defaults to `gelu_new` (the tanh form). `attention_mask` masks padded keys only, as in BERT.

Taken from models/bert.py (read it first): `BertEmbeddings`' forward (AlbertEmbeddings only sizes its tables by
E), `BertSelfAttention`'s heads (AlbertAttention adds the output projection and LayerNorm under ALBERT's names),
`BertPreTrainedModel`'s initialisation and `masked_lm_loss`. Everything else (the shared-group encoder, the heads,
the tying of `predictions.decoder` to the [V, E] table) is ALBERT's own and lives here; the sequence classifier is
in models/classification.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.bert import BertEmbeddings, BertPreTrainedModel, BertSelfAttention, masked_lm_loss
from models.hf import ACTIVATIONS, as_ids, as_input_ids, key_padding_mask, model_device


@dataclass
class AlbertConfig:
    """Hugging Face's AlbertConfig fields that define the model; the defaults are Hugging Face's (albert-xxlarge).

    Values that would change the numbers and are not implemented are rejected by name: an unknown hidden_act,
    a position_embedding_type other than "absolute" (older transformers versions read it; 5.24 ignores it),
    num_hidden_groups < 1, a hidden_size that num_attention_heads does not divide. num_labels sizes the
    sentence-order head (2); a config.json written by transformers gives it as the length of `id2label`."""

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 4096
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    num_attention_heads: int = 64
    intermediate_size: int = 16384
    inner_group_num: int = 1
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    classifier_dropout_prob: float = 0.1
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    eos_token_id: int | list[int] | None = 3
    position_embedding_type: str = "absolute"
    tie_word_embeddings: bool = True
    num_labels: int = 2
    id2label: dict | None = None

    model_type = "albert"

    def __post_init__(self) -> None:
        if self.position_embedding_type != "absolute":
            raise ValueError(f"AlbertConfig: position_embedding_type {self.position_embedding_type!r} is not "
                             f"supported (only 'absolute')")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"AlbertConfig: hidden_act {self.hidden_act!r} is not supported "
                             f"(supported: {', '.join(ACTIVATIONS)})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"AlbertConfig: hidden_size {self.hidden_size} must be a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.num_hidden_groups < 1:
            raise ValueError(f"AlbertConfig: num_hidden_groups {self.num_hidden_groups} must be at least 1")
        if self.id2label:
            self.num_labels = len(self.id2label)


class AlbertEmbeddings(BertEmbeddings):
    """BERT's embeddings (the same forward: word + token_type + position → LayerNorm → dropout) at width
    embedding_size E instead of H: the factorized half of the paper's §3.1."""

    def __init__(self, config: AlbertConfig):
        nn.Module.__init__(self)  # BertEmbeddings.__init__ would size the tables by hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)


class AlbertAttention(BertSelfAttention):
    """BERT's heads (query/key/value) with the output projection and post-norm residual in the same module, as
    ALBERT's files name them (`attention.{query,key,value,dense,LayerNorm}`): LayerNorm(x + dropout(dense(heads)))."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.output_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: tt.Tensor, key_mask=None) -> tt.Tensor:
        """x [B, T, H] → [B, T, H]; key_mask bool [B, 1, 1, T] (True = real key) or None."""
        return self.LayerNorm(x + self.output_dropout(self.dense(super().forward(x, key_mask))))


class AlbertLayer(nn.Module):
    """One post-norm block: attention, then full_layer_layer_norm(a + ffn_output(act(ffn(a)))). Unlike BERT
    there is no dropout on the feed-forward output (Hugging Face's module has one, but its forward never calls it)."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = AlbertAttention(config)
        self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, x: tt.Tensor, key_mask=None) -> tt.Tensor:
        attended = self.attention(x, key_mask)
        return self.full_layer_layer_norm(self.ffn_output(self.activation(self.ffn(attended))) + attended)


class AlbertLayerGroup(nn.Module):
    """inner_group_num AlbertLayers applied in sequence: the unit whose weights the steps share."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.albert_layers = nn.ModuleList([AlbertLayer(config) for _ in range(config.inner_group_num)])

    def forward(self, x: tt.Tensor, key_mask=None) -> tt.Tensor:
        for layer in self.albert_layers:
            x = layer(x, key_mask)
        return x


class AlbertTransformer(nn.Module):
    """`encoder`: the E → H mapping, then num_hidden_layers steps over num_hidden_groups shared groups."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.num_hidden_layers, self.num_hidden_groups = config.num_hidden_layers, config.num_hidden_groups
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size)
        self.albert_layer_groups = nn.ModuleList([AlbertLayerGroup(config) for _ in range(config.num_hidden_groups)])

    def group_of_step(self, step: int) -> int:
        """Which group runs step i: int(i / (L / G)), Hugging Face's float arithmetic (L=5, G=2 → 0,0,0,1,1)."""
        return int(step / (self.num_hidden_layers / self.num_hidden_groups))

    def forward(self, embedded: tt.Tensor, key_mask=None) -> tt.Tensor:
        """embedded [B, T, E] → hidden [B, T, H]."""
        hidden = self.embedding_hidden_mapping_in(embedded)
        for step in range(self.num_hidden_layers):
            hidden = self.albert_layer_groups[self.group_of_step(step)](hidden, key_mask)
        return hidden


class AlbertPreTrainedModel(BertPreTrainedModel):
    """What every ALBERT class shares: the config, the `albert.` prefix, and BERT's (= Hugging Face's default)
    initialisation: N(0, initializer_range) weights, zero biases (the MLM `bias` starts at zero too)."""

    config_class = AlbertConfig
    base_model_prefix = "albert"


class AlbertModel(AlbertPreTrainedModel):
    """The ALBERT trunk. forward returns (last_hidden_state [B, T, H], pooled_output [B, H] or None without the
    pooler). Loading a pre-training checkpoint (`albert.*` + heads) keeps the `albert.*` keys only."""

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = AlbertEmbeddings(config)
        self.encoder = AlbertTransformer(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.apply(self._init_weights)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tuple[tt.Tensor, tt.Tensor | None]:
        """input_ids, token_type_ids, attention_mask [B, T] (numpy arrays or integer Tensors)."""
        input_ids = as_input_ids(input_ids, model_device(self))
        if token_type_ids is not None:
            token_type_ids = as_ids(token_type_ids, input_ids.device)
        key_mask = key_padding_mask(attention_mask, input_ids)                   # [B, 1, 1, T], keys only
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids), key_mask)
        return hidden, F.tanh(self.pooler(hidden[:, 0])) if self.pooler is not None else None


class AlbertMLMHead(nn.Module):
    """`predictions`: logits [B, T, V] = LayerNorm(act(dense(h)))·decoder.Wᵀ + decoder.b, dense H → E. Tied (the
    head model arranges it), decoder.W *is* the [V, E] word embedding matrix and decoder.b *is* `bias`, so the
    files carry only `predictions.bias`; untied, the decoder keeps its own weight and bias, as in HF."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(tt.zeros(config.vocab_size).data)
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, hidden: tt.Tensor) -> tt.Tensor:
        return self.decoder(self.LayerNorm(self.activation(self.dense(hidden))))


class AlbertSOPHead(nn.Module):
    """`sop_classifier`: classifier(dropout(pooled)) → [B, num_labels]; label 0 = segments in order, 1 = swapped."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: tt.Tensor) -> tt.Tensor:
        return self.classifier(self.dropout(pooled))


TIED_MLM_DECODER = {"predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
                    "predictions.decoder.bias": "predictions.bias"}  # target: source (MODELS.md §0.1)


def _tie_decoder(model: AlbertPreTrainedModel) -> None:
    """Share the word embeddings and `predictions.bias` with the decoder when tie_word_embeddings."""
    if model.config.tie_word_embeddings:
        model.predictions.decoder.weight = model.albert.embeddings.word_embeddings.weight
        model.predictions.decoder.bias = model.predictions.bias


class AlbertForPreTraining(AlbertPreTrainedModel):
    """ALBERT with both pre-training heads: forward returns (mlm_logits [B, T, V], sop_logits [B, num_labels])."""

    hf_tied = TIED_MLM_DECODER

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.config = config
        self.albert = AlbertModel(config)
        self.predictions = AlbertMLMHead(config)
        self.sop_classifier = AlbertSOPHead(config)
        self.predictions.apply(self._init_weights)
        self.sop_classifier.apply(self._init_weights)
        _tie_decoder(self)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tuple[tt.Tensor, tt.Tensor]:
        hidden, pooled = self.albert(input_ids, token_type_ids, attention_mask)
        return self.predictions(hidden), self.sop_classifier(pooled)

    @staticmethod
    def loss(mlm_logits: tt.Tensor, sop_logits: tt.Tensor, labels, sentence_order_label) -> tt.Tensor:
        """Hugging Face's pre-training loss: masked-LM cross entropy (labels -100 where not masked) plus the
        sentence-order cross entropy (sentence_order_label [B]: 0 = original order, 1 = swapped)."""
        sop_labels = as_ids(sentence_order_label, sop_logits.device)
        return masked_lm_loss(mlm_logits, labels) + F.cross_entropy(sop_logits, sop_labels)


class AlbertForMaskedLM(AlbertPreTrainedModel):
    """ALBERT with the masked-LM head only (no pooler): forward returns mlm_logits [B, T, V]. Reads pre-training
    checkpoints too, skipping their pooler and sentence-order head as transformers does."""

    hf_tied = TIED_MLM_DECODER
    hf_ignored = (r"^(albert\.)?pooler\.", r"^sop_classifier\.")

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.config = config
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.predictions = AlbertMLMHead(config)
        self.predictions.apply(self._init_weights)
        _tie_decoder(self)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        return self.predictions(self.albert(input_ids, token_type_ids, attention_mask)[0])

    loss = staticmethod(masked_lm_loss)
