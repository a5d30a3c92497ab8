"""Every model checks its inputs the same way (models.hf.as_input_ids, as_attention_mask), and `generate` too.

Issue 14: an empty prompt said "embedding: ids must be integers, got dtype float32", a 1-D one "tuple index out
of range", max_new_tokens=-3 returned the prompt, and a mask of the wrong shape failed in a broadcast deep inside.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinytensor as tt
from models.albert import AlbertConfig, AlbertForPreTraining
from models.bert import BertConfig, BertForPreTraining
from models.deberta import DebertaConfig, DebertaForMaskedLM
from models.gpt2 import GPT2Config, GPT2LMHeadModel
from models.gpt_char import GPT, GPTConfig
from models.llama import LlamaConfig, LlamaForCausalLM
from models.transformer import Transformer, TransformerConfig

VOCAB = 20
MODELS = {
    "gpt2": lambda: GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=8, n_embd=8, n_layer=1, n_head=2)),
    "llama": lambda: LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=8, intermediate_size=12,
                                                  num_hidden_layers=1, num_attention_heads=2,
                                                  max_position_embeddings=8)),
    "bert": lambda: BertForPreTraining(BertConfig(vocab_size=VOCAB, hidden_size=8, num_hidden_layers=1,
                                                  num_attention_heads=2, intermediate_size=12,
                                                  max_position_embeddings=8)),
    "albert": lambda: AlbertForPreTraining(AlbertConfig(vocab_size=VOCAB, embedding_size=4, hidden_size=8,
                                                        num_hidden_layers=1, num_attention_heads=2,
                                                        intermediate_size=12, max_position_embeddings=8)),
    "deberta": lambda: DebertaForMaskedLM(DebertaConfig(vocab_size=VOCAB, hidden_size=8, num_hidden_layers=1,
                                                        num_attention_heads=2, intermediate_size=12,
                                                        max_position_embeddings=8)),
    "gpt_char": lambda: GPT(GPTConfig(vocab_size=VOCAB, block_size=8, n_embd=8, n_layer=1, n_head=2)),
    "transformer": lambda: Transformer(TransformerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, d_model=8,
                                                         n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=12)),
}
MASKED = ["gpt2", "llama", "bert", "albert", "deberta"]  # the models whose forward takes attention_mask
CAUSAL = ["gpt2", "llama", "gpt_char"]  # the models with generate


def forward(name: str, model, ids, **kwargs):
    if name == "transformer":
        return model(ids, ids)
    return model(ids, **kwargs)


BAD_IDS = [
    ([1, 2, 3], ValueError, r"input_ids must be 2-D \[batch, time\], got shape \(3,\); add a batch axis"),
    ([], ValueError, r"input_ids must be 2-D \[batch, time\], got shape \(0,\)"),
    ([[]], ValueError, r"input_ids must hold at least one token per row, got shape \(1, 0\)"),
    ([[[1]]], ValueError, r"input_ids must be 2-D \[batch, time\], got shape \(1, 1, 1\)"),
    ([[1.0, 2.0]], TypeError, "input_ids must be integers, got dtype float32"),
    ([[True, False]], TypeError, "input_ids must be integers, got dtype bool"),
]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("ids, error, message", BAD_IDS)
def test_every_model_forward_names_what_is_wrong_with_its_ids(name, ids, error, message):
    with pytest.raises(error, match=message):
        forward(name, MODELS[name](), ids)


@pytest.mark.parametrize("name", list(MODELS))
def test_an_id_outside_the_vocabulary_names_the_id_and_the_vocabulary_size(name):
    with pytest.raises(IndexError, match=f"token id {VOCAB + 5} is out of range for a vocabulary of size {VOCAB}"):
        forward(name, MODELS[name](), [[1, VOCAB + 5]])


@pytest.mark.parametrize("name", MASKED)
def test_an_attention_mask_of_another_shape_than_the_ids_is_named(name):
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 2\); expected \(1, 3\)"):
        forward(name, MODELS[name](), [[1, 2, 3]], attention_mask=[[1, 1]])


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("ids, error, message", BAD_IDS)
def test_generate_names_what_is_wrong_with_the_prompt(name, ids, error, message):
    with pytest.raises(error, match=message):
        MODELS[name]().generate(ids, max_new_tokens=2)


@pytest.mark.parametrize("name", CAUSAL)
def test_generate_refuses_a_negative_max_new_tokens(name):
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0, got -3"):
        MODELS[name]().generate([[1, 2]], max_new_tokens=-3)


@pytest.mark.parametrize("name", CAUSAL)
def test_generate_with_zero_new_tokens_returns_the_prompt(name):
    assert MODELS[name]().generate(np.array([[1, 2]]), max_new_tokens=0).tolist() == [[1, 2]]


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_generate_names_an_attention_mask_of_the_wrong_shape(name):
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 3\); expected \(2, 2\)"):
        MODELS[name]().generate([[1, 2], [3, 4]], max_new_tokens=1, attention_mask=[[1, 1, 1]])


def test_ids_may_be_numpy_arrays_lists_or_integer_tensors_of_any_int_width():
    model = MODELS["gpt2"]().eval()
    expected = model(np.array([[1, 2, 3]])).numpy()
    for ids in ([[1, 2, 3]], np.array([[1, 2, 3]], dtype=np.int32), tt.tensor([[1, 2, 3]]), np.uint8([[1, 2, 3]])):
        np.testing.assert_array_equal(model(ids).numpy(), expected)
