"""Sequence classification for the encoders (BERT, ALBERT, DeBERTa), with an embeddings entry for SiFT.

Each class is the Hugging Face `*ForSequenceClassification` of its family, with HF's parameter names so that
`from_pretrained` reads a pre-training, masked-LM or base checkpoint (skipping the pre-training heads) and starts
the new head fresh (`hf_fresh`, models/hf.py), and `save_pretrained` writes a directory transformers loads:

    BERT     classifier(dropout(tanh(bert.pooler.dense(h[:, 0]))))        defined in models/bert.py, imported here
    ALBERT   classifier(dropout(tanh(albert.pooler(h[:, 0]))))             dropout = classifier_dropout_prob
    DeBERTa  classifier(dropout(act(pooler.dense(dropout(h[:, 0])))))      HF's ContextPooler; the paper's fine-tuning

Every class splits its forward in two, `embed` (ids → the embedding layer's output [B, T, E]) and
`forward_embeddings` (that output → logits [B, num_labels]), because the models take token ids only: SiFT
(train/sift.py) perturbs the embeddings in between. `forward` is the composition of the two
(`EmbeddingsEntry`, models/hf.py). Each class name exists once in models/: BERT's classifier lives beside BERT
and is only re-exported here; `CLASSIFIERS` (below) is what train/finetune.py's --model chooses from.
"""
from __future__ import annotations

from dataclasses import dataclass

import tinytensor as tt
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from models.albert import AlbertConfig, AlbertModel, AlbertPreTrainedModel
from models.bert import BertConfig, BertForSequenceClassification
from models.deberta import DebertaConfig, DebertaModel, DebertaPreTrainedModel, query_key_mask
from models.hf import (ACTIVATIONS, EmbeddingsEntry, as_attention_mask, as_ids, as_input_ids, key_padding_mask,
                       model_device)


def _ids_and_types(model, input_ids, token_type_ids) -> tuple[tt.Tensor, tt.Tensor | None]:
    input_ids = as_input_ids(input_ids, model_device(model))
    return input_ids, None if token_type_ids is None else as_ids(token_type_ids, input_ids.device)


# ---- ALBERT -------------------------------------------------------------------------------------------------------
class AlbertForSequenceClassification(EmbeddingsEntry, AlbertPreTrainedModel):
    """ALBERT with `classifier` on the pooled output (Hugging Face's AlbertForSequenceClassification). Reads
    pre-training and masked-LM checkpoints, skipping `predictions.*` and `sop_classifier.*`."""

    hf_ignored = (r"^predictions\.", r"^sop_classifier\.")
    hf_fresh = (r"^classifier\.",)

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.config = config
        self.albert = AlbertModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.classifier.apply(self._init_weights)

    def embed(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        """The factorized embeddings at width E = embedding_size: [B, T, E]."""
        return self.albert.embeddings(*_ids_and_types(self, input_ids, token_type_ids))

    def forward_embeddings(self, embedded: tt.Tensor, attention_mask=None) -> tt.Tensor:
        """[B, T, E] → E→H mapping and shared layers → tanh(pooler(h[:, 0])) → dropout → classifier."""
        hidden = self.albert.encoder(embedded, key_padding_mask(attention_mask, embedded))
        return self.classifier(self.dropout(F.tanh(self.albert.pooler(hidden[:, 0]))))


# ---- DeBERTa ------------------------------------------------------------------------------------------------------
@dataclass
class DebertaClassificationConfig(DebertaConfig):
    """DebertaConfig plus the fields of Hugging Face's that only the classifier reads (its defaults): the number
    of labels (the length of `id2label` when given), ContextPooler's width, activation and dropout, and cls_dropout
    (None: hidden_dropout_prob). config.json keeps model_type `deberta`."""

    num_labels: int = 2
    id2label: dict | None = None
    pooler_hidden_size: int | None = None
    pooler_hidden_act: str = "gelu"
    pooler_dropout: float = 0.0
    cls_dropout: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pooler_hidden_act not in ACTIVATIONS:
            raise ValueError(f"DebertaConfig: pooler_hidden_act {self.pooler_hidden_act!r} is not supported "
                             f"(supported: {', '.join(ACTIVATIONS)})")
        self.pooler_hidden_size = self.pooler_hidden_size or self.hidden_size
        if self.id2label:
            self.num_labels = len(self.id2label)


class ContextPooler(nn.Module):
    """`pooler`: act(dense(dropout(h[:, 0]))), [B, T, H] → [B, pooler_hidden_size] (Hugging Face's ContextPooler)."""

    def __init__(self, config: DebertaClassificationConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.pooler_hidden_size)
        self.dropout = nn.Dropout(config.pooler_dropout)
        self.activation = ACTIVATIONS[config.pooler_hidden_act]

    def forward(self, hidden: tt.Tensor) -> tt.Tensor:
        return self.activation(self.dense(self.dropout(hidden[:, 0])))


def add_deberta_classifier_head(model, config) -> None:
    """`pooler`, `dropout` and `classifier` of a DeBERTa (v1 or v2) sequence classifier, initialised as transformers
    does (cls_dropout, else hidden_dropout_prob); the trunk's unused position weights are skipped as in its base."""
    model.pooler = ContextPooler(config)
    model.classifier = nn.Linear(config.pooler_hidden_size, config.num_labels)
    model.dropout = nn.Dropout(config.cls_dropout if config.cls_dropout is not None else config.hidden_dropout_prob)
    model.pooler.apply(model._init_weights)
    model.classifier.apply(model._init_weights)
    model._skip_unused_positions()


class DebertaForSequenceClassification(EmbeddingsEntry, DebertaPreTrainedModel):
    """DeBERTa with `pooler` (ContextPooler) and `classifier` (Hugging Face's DebertaForSequenceClassification).
    Reads base and masked-LM checkpoints (skipping `cls.*` / `lm_predictions.*`); pooler and classifier start
    fresh when the file has none."""

    config_class = DebertaClassificationConfig
    hf_ignored = (r"^cls\.", r"^lm_predictions\.")
    hf_fresh = (r"^pooler\.", r"^classifier\.")

    def __init__(self, config: DebertaClassificationConfig):
        super().__init__()
        self.config = config
        self.deberta = DebertaModel(config)
        add_deberta_classifier_head(self, config)

    def embed(self, input_ids, token_type_ids=None, attention_mask=None) -> tt.Tensor:
        """word (+ positions / token types as configured) → LayerNorm → pad rows zeroed → dropout: [B, T, H]."""
        input_ids, token_type_ids = _ids_and_types(self, input_ids, token_type_ids)
        mask = as_attention_mask(attention_mask, input_ids)
        return self.deberta.embeddings(input_ids, token_type_ids, mask)

    def forward_embeddings(self, embedded: tt.Tensor, attention_mask=None) -> tt.Tensor:
        """[B, T, H] → disentangled-attention layers → ContextPooler → dropout → classifier."""
        keep = query_key_mask(attention_mask, embedded)
        hidden = self.deberta.encoder(embedded, keep)[-1]
        return self.classifier(self.dropout(self.pooler(hidden)))


# name → (config class, classifier class): what train/finetune.py's --model chooses from
CLASSIFIERS = {"bert": (BertConfig, BertForSequenceClassification),
               "albert": (AlbertConfig, AlbertForSequenceClassification),
               "deberta": (DebertaClassificationConfig, DebertaForSequenceClassification)}
