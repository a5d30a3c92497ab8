"""BERT (Devlin et al. 2018, "BERT: Pre-training of Deep Bidirectional Transformers"), loadable from Hugging Face.

An encoder: every token attends to every real token (no causal mask), and the blocks are *post-norm*, unlike
GPT-2's pre-norm (see MODELS.md §3):

    h = LayerNorm(word[ids] + position[arange(T)] + token_type[tt])              [B, T, H]
    a = LayerNorm(h + dense(attention(h)))          } × num_hidden_layers
    h = LayerNorm(a + dense(act(intermediate(a))))  }  act = hidden_act (`gelu` is the exact erf form)
    pooled = tanh(pooler.dense(h[:, 0]))                                         [B, H]  (the [CLS] position)

Heads, in Hugging Face's names: `cls.predictions` (masked-LM: dense → act → LayerNorm → h·wordᵀ +
`cls.predictions.bias`, the decoder tied to the word embeddings), `cls.seq_relationship` (next-sentence
prediction on the pooled output) and `classifier` (sequence classification). `attention_mask` ([B, T], 1 = token,
0 = pad) masks padded *keys* only, as Hugging Face does, so outputs at pad positions are unspecified.
models/hf.py does the loading and saving; the classes below only declare how their names meet the files.
"""
from __future__ import annotations

from dataclasses import dataclass

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.hf import (ACTIVATIONS, EmbeddingsEntry, PretrainedModel, as_ids, as_input_ids, key_padding_mask,
                       model_device)


@dataclass
class BertConfig:
    """Hugging Face's BertConfig fields that define the model; the defaults are `bert-base-uncased`.

    Values that would change the numbers and are not implemented are rejected by name: is_decoder (causal
    self-attention), add_cross_attention, a position_embedding_type other than "absolute" (older configs carry
    it), an unknown hidden_act. num_labels sizes BertForSequenceClassification's classifier; a config.json
    written by transformers gives it as the length of `id2label`."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    classifier_dropout: float | None = None
    position_embedding_type: str = "absolute"
    is_decoder: bool = False
    add_cross_attention: bool = False
    tie_word_embeddings: bool = True
    num_labels: int = 2
    id2label: dict | None = None

    model_type = "bert"

    def __post_init__(self) -> None:
        for flag in ("is_decoder", "add_cross_attention"):
            if getattr(self, flag):
                raise ValueError(f"BertConfig: {flag}=True (a causal or encoder-decoder BERT) is not supported")
        if self.position_embedding_type != "absolute":
            raise ValueError(f"BertConfig: position_embedding_type {self.position_embedding_type!r} is not "
                             f"supported (only 'absolute')")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"BertConfig: hidden_act {self.hidden_act!r} is not supported "
                             f"(supported: {', '.join(ACTIVATIONS)})")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BertConfig: hidden_size {self.hidden_size} must be a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.id2label:
            self.num_labels = len(self.id2label)


class BertEmbeddings(nn.Module):
    """word[ids] + position[arange(T)] + token_type[tt] → LayerNorm → dropout. Positions start at 0 (no
    RoBERTa offset); token_type_ids default to zeros; the pad_token_id row of `word_embeddings` gets no gradient."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: tt.Tensor, token_type_ids: tt.Tensor | None = None) -> tt.Tensor:
        time = input_ids.shape[1]
        if time > self.position_embeddings.num_embeddings:
            raise ValueError(f"sequence length {time} exceeds max_position_embeddings "
                             f"{self.position_embeddings.num_embeddings}")
        if token_type_ids is None:
            token_type_ids = tt.zeros(input_ids.shape, dtype=input_ids.dtype, device=input_ids.device)
        positions = tt.arange(time, device=input_ids.device)
        embeddings = (self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
                      + self.position_embeddings(positions))
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    """Bidirectional multi-head attention with separate query/key/value projections (each H → H with bias).
    Head h owns features [h·d, (h+1)·d); scores are q·kᵀ/√d, padded keys masked, softmax, dropout, ·v."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads, self.dropout_p = config.num_attention_heads, config.attention_probs_dropout_prob
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: tt.Tensor, key_mask=None) -> tt.Tensor:
        """x [B, T, H] → merged heads [B, T, H]; key_mask bool [B, 1, 1, T] (True = real key) or None."""
        qkv = tt.cat([self.query(x), self.key(x), self.value(x)], dim=-1)          # [B, T, 3H], GPT-2's layout
        return F.packed_self_attention(qkv, self.num_heads, key_mask, self.dropout_p if self.training else 0.0)


class BertSelfOutput(nn.Module):
    """The residual sub-layer around attention: LayerNorm(dropout(dense(attended)) + x) (post-norm)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, attended: tt.Tensor, x: tt.Tensor) -> tt.Tensor:
        return self.LayerNorm(self.dropout(self.dense(attended)) + x)


class BertAttention(nn.Module):
    """`attention.self` (the heads) followed by `attention.output` (projection, residual, LayerNorm)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, x: tt.Tensor, key_mask=None) -> tt.Tensor:
        return self.output(self.self(x, key_mask), x)


class BertIntermediate(nn.Module):
    """The FFN's first half: hidden_act(dense(x)), H → intermediate_size."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACTIVATIONS[config.hidden_act]

    def forward(self, x: tt.Tensor) -> tt.Tensor:
        return self.activation(self.dense(x))


class BertOutput(BertSelfOutput):
    """The FFN's second half: LayerNorm(dropout(dense(inner)) + a), intermediate_size → H."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)


class BertLayer(nn.Module):
    """One post-norm encoder block: attention sub-layer, then feed-forward sub-layer, each with its LayerNorm."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, x: tt.Tensor, key_mask=None) -> tt.Tensor:
        attended = self.attention(x, key_mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    """num_hidden_layers BertLayers in sequence (`encoder.layer.{i}`)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, x: tt.Tensor, key_mask=None) -> tt.Tensor:
        for layer in self.layer:
            x = layer(x, key_mask)
        return x


class BertPooler(nn.Module):
    """tanh(dense(h[:, 0])): the [CLS] position's summary of the sequence, [B, T, H] → [B, H]."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: tt.Tensor) -> tt.Tensor:
        return F.tanh(self.dense(hidden[:, 0]))


class BertPreTrainedModel(PretrainedModel):
    """What every BERT class shares: the config, the `bert.` prefix, and Hugging Face's initialisation."""

    config_class = BertConfig
    base_model_prefix = "bert"

    def _init_weights(self, module: nn.Module) -> None:
        """N(0, initializer_range) for Linear and Embedding weights (the padding row zero), zero biases,
        LayerNorm at ones/zeros (already its own default), as Hugging Face's BertPreTrainedModel."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx] = 0


class BertModel(BertPreTrainedModel):
    """The BERT trunk. forward returns (last_hidden_state [B, T, H], pooled_output [B, H] or None without
    the pooler). Loading a head checkpoint (`bert.*` + `cls.*`) keeps the `bert.*` keys only."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.apply(self._init_weights)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tuple[tt.Tensor, tt.Tensor | None]:
        """input_ids, token_type_ids, attention_mask [B, T] (numpy arrays or integer Tensors)."""
        input_ids = as_input_ids(input_ids, model_device(self))
        if token_type_ids is not None:
            token_type_ids = as_ids(token_type_ids, input_ids.device)
        key_mask = key_padding_mask(attention_mask, input_ids)                   # [B, 1, 1, T], keys only
        hidden = self.encoder(self.embeddings(input_ids, token_type_ids), key_mask)
        return hidden, self.pooler(hidden) if self.pooler is not None else None


class BertPredictionHeadTransform(nn.Module):
    """dense (H → H) → hidden_act → LayerNorm: the masked-LM head's transform before the decoder."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: tt.Tensor) -> tt.Tensor:
        return self.LayerNorm(self.activation(self.dense(hidden)))


class BertLMPredictionHead(nn.Module):
    """logits [B, T, V] = transform(h)·decoder.Wᵀ + decoder.b. With tie_word_embeddings (the head model
    arranges it) decoder.W *is* the word embedding matrix and decoder.b *is* `bias`, so the files carry only
    `cls.predictions.bias`; untied, the decoder keeps its own weight and bias and `bias` goes unused, as in HF."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(tt.zeros(config.vocab_size).data)

    def forward(self, hidden: tt.Tensor) -> tt.Tensor:
        return self.decoder(self.transform(hidden))


class BertOnlyMLMHead(nn.Module):
    """`cls` of BertForMaskedLM: the masked-LM head alone."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, hidden: tt.Tensor) -> tt.Tensor:
        return self.predictions(hidden)


class BertPreTrainingHeads(BertOnlyMLMHead):
    """`cls` of BertForPreTraining: masked-LM logits [B, T, V] and next-sentence logits [B, 2] (0 = B follows A)."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, hidden: tt.Tensor, pooled: tt.Tensor) -> tuple[tt.Tensor, tt.Tensor]:
        return self.predictions(hidden), self.seq_relationship(pooled)


TIED_MLM_DECODER = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                    "cls.predictions.decoder.bias": "cls.predictions.bias"}  # target: source (MODELS.md §0.1)


def _tie_decoder(model: BertPreTrainedModel) -> None:
    """Share the word embeddings and `cls.predictions.bias` with the decoder when tie_word_embeddings."""
    predictions = model.cls.predictions
    if model.config.tie_word_embeddings:
        predictions.decoder.weight = model.bert.embeddings.word_embeddings.weight
        predictions.decoder.bias = predictions.bias


def masked_lm_loss(mlm_logits: tt.Tensor, labels) -> tt.Tensor:
    """Mean cross entropy over the positions whose label is not -100 (the masked tokens)."""
    return F.cross_entropy(mlm_logits.reshape(-1, mlm_logits.shape[-1]), as_ids(labels, mlm_logits.device).reshape(-1))


class BertForPreTraining(BertPreTrainedModel):
    """BERT with both pre-training heads: forward returns (mlm_logits [B, T, V], nsp_logits [B, 2])."""

    hf_tied = TIED_MLM_DECODER

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)
        self.cls.apply(self._init_weights)
        _tie_decoder(self)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tuple[tt.Tensor, tt.Tensor]:
        hidden, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        return self.cls(hidden, pooled)

    @staticmethod
    def loss(mlm_logits: tt.Tensor, nsp_logits: tt.Tensor, labels, next_sentence_label) -> tt.Tensor:
        """Hugging Face's pre-training loss: masked-LM cross entropy (labels -100 where not masked) plus the
        next-sentence cross entropy (next_sentence_label [B]: 0 = B follows A, 1 = random)."""
        nsp_labels = as_ids(next_sentence_label, nsp_logits.device)
        return masked_lm_loss(mlm_logits, labels) + F.cross_entropy(nsp_logits, nsp_labels)


class BertForMaskedLM(BertPreTrainedModel):
    """BERT with the masked-LM head only (no pooler): forward returns mlm_logits [B, T, V]. Reads pre-training
    checkpoints too, skipping their pooler and next-sentence head as transformers does."""

    hf_tied = TIED_MLM_DECODER
    hf_ignored = (r"^(bert\.)?pooler\.", r"^cls\.seq_relationship\.")

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.cls.apply(self._init_weights)
        _tie_decoder(self)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        return self.cls(self.bert(input_ids, token_type_ids, attention_mask)[0])

    loss = staticmethod(masked_lm_loss)


class BertForSequenceClassification(EmbeddingsEntry, BertPreTrainedModel):
    """BERT with a classifier on the pooled output: forward returns logits [B, num_labels]. Reads pre-training
    checkpoints (skipping `cls.*`) and starts the classifier fresh when the file has none, for fine-tuning.
    forward = forward_embeddings(embed(ids)) (`EmbeddingsEntry`, models/hf.py), the split SiFT needs."""

    hf_ignored = (r"^cls\.",)
    hf_fresh = (r"^classifier\.",)

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.classifier.apply(self._init_weights)

    def embed(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        """word + position + token type → LayerNorm → dropout: [B, T, H]."""
        input_ids = as_input_ids(input_ids, model_device(self))
        if token_type_ids is not None:
            token_type_ids = as_ids(token_type_ids, input_ids.device)
        return self.bert.embeddings(input_ids, token_type_ids)

    def forward_embeddings(self, embedded: tt.Tensor, attention_mask=None) -> tt.Tensor:
        """[B, T, H] → encoder → pooler → dropout → classifier: [B, num_labels]."""
        hidden = self.bert.encoder(embedded, key_padding_mask(attention_mask, embedded))
        return self.classifier(self.dropout(self.bert.pooler(hidden)))
