"""GPT-2: the same logits and AdamW losses as transformers (from the committed fixture), gradients, generation.

tests/fixtures/make_gpt2_fixture.py wrote tests/fixtures/gpt2/ with transformers 5.24 + torch: a tiny float64
checkpoint with weights far from init, and HF's logits (eager attention) with and without padding.
"""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
from models.gpt2 import GPT2Config, GPT2LMHeadModel
from models.hf import read_weights
from tinytensor.optim import AdamW

FIXTURE = Path(__file__).parent / "fixtures" / "gpt2"
CHECKPOINT = FIXTURE / "checkpoint"
REFERENCE = safetensors.numpy.load_file(FIXTURE / "reference.safetensors")
RECORD = json.loads((FIXTURE / "reference.json").read_text())


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours − theirs| / max |theirs|: one number for a whole logits array."""
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


@pytest.fixture(scope="module")
def model64() -> GPT2LMHeadModel:
    return GPT2LMHeadModel.from_pretrained(CHECKPOINT, dtype=tt.float64).eval()


def test_float64_logits_match_transformers(model64):
    logits = model64(REFERENCE["input_ids"]).numpy()
    assert logits.dtype == np.float64
    assert relative_error(logits, REFERENCE["logits_float64"]) <= 1e-10


def test_padded_float64_logits_match_transformers_at_real_positions(model64):
    mask = REFERENCE["attention_mask"]
    logits = model64(REFERENCE["input_ids"], attention_mask=mask).numpy()
    real = mask.astype(bool)
    assert relative_error(logits[real], REFERENCE["logits_padded_float64"][real]) <= 1e-10
    assert relative_error(logits[real], REFERENCE["logits_float64"][real]) > 1e-3  # the mask did change them


def test_float32_logits_match_transformers_float32():
    model = GPT2LMHeadModel.from_pretrained(CHECKPOINT).eval()  # float32 by default
    mask = REFERENCE["attention_mask"]
    plain = model(REFERENCE["input_ids"]).numpy()
    padded = model(REFERENCE["input_ids"], attention_mask=mask).numpy()
    assert plain.dtype == np.float32
    assert relative_error(plain, REFERENCE["logits_float32"]) <= 1e-5
    real = mask.astype(bool)
    assert relative_error(padded[real], REFERENCE["logits_padded_float32"][real]) <= 1e-5


def test_numerics_flags_match_transformers():
    """No 1/√d scale, the extra 1/(layer_idx + 1) scale and the erf GELU, all from config flags."""
    config = GPT2Config(**{**RECORD["config"], **RECORD["flags"]})
    model = GPT2LMHeadModel(config).to(tt.float64).eval()
    model.load_hf_state_dict(read_weights(CHECKPOINT))
    logits = model(REFERENCE["input_ids"]).numpy()
    assert relative_error(logits, REFERENCE["logits_flags_float64"]) <= 1e-10


def test_adamw_loss_trace_matches_torch():
    """Three AdamW steps on the padded batch from the fixture checkpoint: the same losses. The labels are −100
    wherever the loss would read a pad (see make_gpt2_fixture.loss_labels)."""
    model = GPT2LMHeadModel.from_pretrained(CHECKPOINT, dtype=tt.float64).train()
    hyper = RECORD["adamw"]
    optimizer = AdamW(model.parameters(), lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"],
                      weight_decay=hyper["weight_decay"])
    ids, mask, labels = REFERENCE["input_ids"], REFERENCE["attention_mask"], REFERENCE["labels"]
    losses = []
    for step in range(len(RECORD["adamw_losses"])):
        loss = model.loss(model(ids, attention_mask=mask), labels)
        losses.append(loss.item())
        if step < len(RECORD["adamw_losses"]) - 1:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    np.testing.assert_allclose(losses, RECORD["adamw_losses"], rtol=1e-10)


@st.composite
def gpt2_configs(draw):
    n_head = draw(st.sampled_from([1, 2]))
    return GPT2Config(vocab_size=draw(st.integers(3, 6)), n_positions=draw(st.integers(3, 5)),
                      n_embd=n_head * draw(st.sampled_from([2, 3])), n_layer=draw(st.integers(1, 2)), n_head=n_head,
                      n_inner=draw(st.sampled_from([None, 4])), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      scale_attn_by_inverse_layer_idx=draw(st.booleans()),
                      activation_function=draw(st.sampled_from(["gelu_new", "gelu", "relu"])))


@settings(max_examples=5)
@given(config=gpt2_configs(), padded=st.booleans(), seed=st.integers(0, 2**16))
def test_lm_loss_gradient_matches_finite_differences(config, padded, seed):
    """Every parameter (the tied wte/lm_head counted once) in float64, weights far from init."""
    rng = np.random.default_rng(seed)
    model = GPT2LMHeadModel(config).to(tt.float64)
    params = list(model.parameters())
    for param in params:
        param.data = rng.normal(0, 0.5, param.shape)
    ids = rng.integers(0, config.vocab_size, (2, config.n_positions))
    mask = np.ones_like(ids)
    if padded:
        mask[0, 0] = 0
    labels = np.where(mask == 1, ids, -100)
    fast = sum(p.numel() for p in params) > 200
    assert tt.gradcheck(lambda *_: model.loss(model(ids, attention_mask=mask), labels), params, fast=fast)


def tiny_model(**overrides) -> GPT2LMHeadModel:
    config = dict(vocab_size=23, n_positions=12, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0,
                  embd_pdrop=0.0, attn_pdrop=0.0)
    tt.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**{**config, **overrides})).to(tt.float64)
    for param in model.parameters():  # large weights, so greedy choices are not near-ties
        param.data = np.random.default_rng(1).normal(0, 0.5, param.shape)
    return model


@pytest.mark.parametrize("flag, value", [("add_cross_attention", True), ("activation_function", "gelu_10")])
def test_unsupported_config_flag_raises_naming_it(flag, value):
    with pytest.raises(ValueError, match=flag):
        GPT2Config(**{flag: value})


def test_sequence_longer_than_n_positions_raises():
    with pytest.raises(ValueError, match="n_positions"):
        tiny_model()(np.zeros((1, 13), dtype=np.int64))


def test_untied_config_keeps_a_separate_head():
    model = tiny_model(tie_word_embeddings=False)
    assert model.lm_head.weight is not model.transformer.wte.weight
    assert dataclasses.asdict(model.config)["tie_word_embeddings"] is False
