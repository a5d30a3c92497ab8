"""BERT: the same outputs and AdamW losses as transformers (from the committed fixture), checkpoints, gradients.

tests/fixtures/make_bert_fixture.py wrote tests/fixtures/bert/ with transformers 5.24 + torch: a tiny float64
BertForPreTraining checkpoint with weights far from init, token types, and HF's outputs (eager attention) with and
without padding, plus an AdamW loss trace and the keys, shapes and dtypes transformers saved.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
from models.bert import (BertConfig, BertForMaskedLM, BertForPreTraining, BertForSequenceClassification,
                         BertModel)
from models.hf import read_weights
from tinytensor.io import CheckpointError
from tinytensor.optim import AdamW

FIXTURE = Path(__file__).parent / "fixtures" / "bert"
CHECKPOINT = FIXTURE / "checkpoint"
REFERENCE = safetensors.numpy.load_file(FIXTURE / "reference.safetensors")
RECORD = json.loads((FIXTURE / "reference.json").read_text())
IDS, TYPES, MASK = REFERENCE["input_ids"], REFERENCE["token_type_ids"], REFERENCE["attention_mask"]
REAL = MASK.astype(bool)


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours − theirs| / max |theirs|: one number for a whole array."""
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def outputs_of(model: BertForPreTraining, padded: bool) -> dict[str, np.ndarray]:
    """Our four outputs, named as in the fixture."""
    mask = MASK if padded else None
    hidden, pooled = model.bert(IDS, TYPES, mask)
    mlm, nsp = model(IDS, TYPES, mask)
    return {"last_hidden_state": hidden.numpy(), "pooler_output": pooled.numpy(), "prediction_logits": mlm.numpy(),
            "seq_relationship_logits": nsp.numpy()}


def write_checkpoint(directory: Path, state: dict, config: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = config or json.loads((CHECKPOINT / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config))
    safetensors.numpy.save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def saved_layout(path: Path) -> tuple[dict, dict]:
    with safetensors.safe_open(str(path), framework="numpy") as file:
        keys = {key: [list(file.get_slice(key).get_shape()), file.get_slice(key).get_dtype()] for key in file.keys()}
        return keys, file.metadata()


@pytest.fixture(scope="module")
def model64() -> BertForPreTraining:
    return BertForPreTraining.from_pretrained(CHECKPOINT, dtype=tt.float64).eval()


@pytest.mark.parametrize("padded", [False, True])
def test_float64_outputs_match_transformers(model64, padded):
    """Hidden states and MLM logits at real positions; pooled and NSP outputs read position 0, which is a pad in
    row 0 of the padded batch, yet agree too since only keys are masked (as in transformers)."""
    kind = "padded" if padded else "plain"
    ours = outputs_of(model64, padded)
    for name, value in ours.items():
        theirs = REFERENCE[f"{name}_{kind}_float64"]
        assert value.dtype == np.float64
        real = REAL if padded and value.ndim == 3 else slice(None)
        assert relative_error(value[real], theirs[real]) <= 1e-10, name
    if padded:  # the mask did change the real positions
        plain = REFERENCE["prediction_logits_plain_float64"]
        assert relative_error(ours["prediction_logits"][REAL], plain[REAL]) > 1e-3


def test_float32_outputs_match_transformers_float32():
    model = BertForPreTraining.from_pretrained(CHECKPOINT).eval()  # float32 by default
    for padded, kind in ((False, "plain"), (True, "padded")):
        for name, value in outputs_of(model, padded).items():
            assert value.dtype == np.float32
            real = REAL if padded and value.ndim == 3 else slice(None)
            assert relative_error(value[real], REFERENCE[f"{name}_{kind}_float32"][real]) <= 1e-5, name


@pytest.mark.parametrize("flag", ["gelu_new", "relu"])
def test_hidden_act_and_layer_norm_eps_come_from_the_config(flag):
    config = BertConfig(**{**RECORD["config"], **RECORD["flags"][flag]})
    model = BertForPreTraining(config).to(tt.float64).eval()
    model.load_hf_state_dict(read_weights(CHECKPOINT))
    logits = model(IDS, TYPES, MASK)[0].numpy()
    assert relative_error(logits[REAL], REFERENCE[f"prediction_logits_{flag}_float64"][REAL]) <= 1e-10
    assert relative_error(logits[REAL], REFERENCE["prediction_logits_padded_float64"][REAL]) > 1e-5  # erf/tanh: 5e-4


def test_adamw_loss_trace_matches_torch():
    """Three AdamW steps on the padded batch: MLM (labels -100 where unmasked) + NSP loss, the same losses."""
    model = BertForPreTraining.from_pretrained(CHECKPOINT, dtype=tt.float64).train()
    hyper = RECORD["adamw"]
    optimizer = AdamW(model.parameters(), lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"],
                      weight_decay=hyper["weight_decay"])
    losses = []
    for step in range(len(RECORD["adamw_losses"])):
        mlm, nsp = model(IDS, TYPES, MASK)
        loss = model.loss(mlm, nsp, REFERENCE["labels"], REFERENCE["next_sentence_label"])
        losses.append(loss.item())
        if step < len(RECORD["adamw_losses"]) - 1:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    np.testing.assert_allclose(losses, RECORD["adamw_losses"], rtol=1e-10)


def test_save_pretrained_writes_exactly_the_keys_shapes_dtypes_and_metadata_of_transformers(model64, tmp_path):
    model64.save_pretrained(tmp_path)
    keys, metadata = saved_layout(tmp_path / "model.safetensors")
    assert keys == RECORD["hf_saved_keys"]
    assert metadata == RECORD["hf_metadata"] == {"format": "pt"}
    assert not any(key.startswith("cls.predictions.decoder") for key in keys)
    config = json.loads((tmp_path / "config.json").read_text())
    hf_config = json.loads((CHECKPOINT / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"] and config["model_type"] == "bert"
    for key, value in config.items():
        if key in hf_config and key != "architectures":
            assert value == hf_config[key] and type(value) is type(hf_config[key]), key


def test_bert_model_loads_a_pretraining_checkpoint_ignoring_cls(model64, tmp_path):
    trunk = BertModel.from_pretrained(CHECKPOINT, dtype=tt.float64).eval()
    hidden, pooled = trunk(IDS, TYPES, MASK)
    expected_hidden, expected_pooled = model64.bert(IDS, TYPES, MASK)
    np.testing.assert_array_equal(hidden.numpy(), expected_hidden.numpy())
    np.testing.assert_array_equal(pooled.numpy(), expected_pooled.numpy())
    trunk.save_pretrained(tmp_path)
    keys, _ = saved_layout(tmp_path / "model.safetensors")
    assert set(keys) == {key.removeprefix("bert.") for key in RECORD["hf_saved_keys"] if key.startswith("bert.")}
    with pytest.raises(CheckpointError, match="missing keys.*cls.predictions.bias"):  # a trunk file has no heads
        BertForPreTraining.from_pretrained(tmp_path)


def test_legacy_gamma_beta_position_ids_and_explicit_decoder_load(tmp_path):
    """An old BERT file: LayerNorm gamma/beta, a persistent position_ids buffer, and the tied decoder written out."""
    state = read_weights(CHECKPOINT)
    for name in [name for name in state if "LayerNorm" in name]:
        state[name.replace(".weight", ".gamma").replace(".bias", ".beta")] = state.pop(name)
    state["bert.embeddings.position_ids"] = np.arange(64)[None]
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    model = BertForPreTraining.from_pretrained(write_checkpoint(tmp_path, state), dtype=tt.float64).eval()
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    logits = model(IDS, TYPES)[0].numpy()
    assert relative_error(logits, REFERENCE["prediction_logits_plain_float64"]) <= 1e-10


def test_masked_lm_loads_a_pretraining_checkpoint_and_saves_its_own_layout(tmp_path):
    model = BertForMaskedLM.from_pretrained(CHECKPOINT, dtype=tt.float64).eval()
    logits = model(IDS, TYPES, MASK).numpy()
    assert relative_error(logits[REAL], REFERENCE["prediction_logits_padded_float64"][REAL]) <= 1e-10
    model.save_pretrained(tmp_path)
    keys, _ = saved_layout(tmp_path / "model.safetensors")
    assert set(keys) == {key for key in RECORD["hf_saved_keys"]
                         if not key.startswith(("bert.pooler.", "cls.seq_relationship."))}


def test_sequence_classifier_starts_fresh_from_a_pretraining_checkpoint_and_round_trips(model64, tmp_path):
    config = {**json.loads((CHECKPOINT / "config.json").read_text()), "id2label": {"0": "a", "1": "b", "2": "c"}}
    directory = write_checkpoint(tmp_path / "pretrained", read_weights(CHECKPOINT), config)
    model = BertForSequenceClassification.from_pretrained(directory, dtype=tt.float64).eval()
    assert model.config.num_labels == 3
    np.testing.assert_array_equal(model.bert(IDS, TYPES, MASK)[1].numpy(), model64.bert(IDS, TYPES, MASK)[1].numpy())
    logits = model(IDS, TYPES, MASK)
    assert logits.shape == (2, 3)
    model.save_pretrained(tmp_path / "saved")
    again = BertForSequenceClassification.from_pretrained(tmp_path / "saved", dtype=tt.float64).eval()
    np.testing.assert_array_equal(again(IDS, TYPES, MASK).numpy(), logits.numpy())


def test_untied_decoder_is_required_and_kept_separate(tmp_path):
    config = {**json.loads((CHECKPOINT / "config.json").read_text()), "tie_word_embeddings": False}
    with pytest.raises(CheckpointError, match="missing keys.*cls.predictions.decoder.weight"):
        BertForPreTraining.from_pretrained(write_checkpoint(tmp_path / "no_decoder", read_weights(CHECKPOINT), config))
    state = read_weights(CHECKPOINT)
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"] * 2
    state["cls.predictions.decoder.bias"] = np.ones(100)
    model = BertForPreTraining.from_pretrained(write_checkpoint(tmp_path / "decoder", state, config))
    assert model.cls.predictions.decoder.weight is not model.bert.embeddings.word_embeddings.weight
    assert model.cls.predictions.decoder.bias is not model.cls.predictions.bias
    model.save_pretrained(tmp_path / "saved")
    assert "cls.predictions.decoder.bias" in saved_layout(tmp_path / "saved" / "model.safetensors")[0]


def tiny_model(cls=BertForPreTraining, **overrides):
    config = dict(vocab_size=23, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                  max_position_embeddings=12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = cls(BertConfig(**{**config, **overrides})).to(tt.float64).eval()
    rng = np.random.default_rng(1)
    for param in model.parameters():
        param.data = rng.normal(0, 0.5, param.shape)
    return model


def test_pad_token_row_gets_no_embedding_gradient_as_in_torch():
    """word_embeddings has padding_idx = pad_token_id: only the (tied) decoder's gradient reaches that row."""
    model = tiny_model(BertForSequenceClassification)
    model.loss(model(np.array([[2, 0, 0, 3]])), np.array([1])).backward()
    word_grad = model.bert.embeddings.word_embeddings.weight.grad.numpy()
    assert (word_grad[0] == 0).all() and (word_grad[2] != 0).any()


def test_padding_keys_does_not_change_real_positions():
    model = tiny_model()
    ids, types = np.array([[2, 5, 6, 7, 8, 0, 0]]), np.array([[0, 0, 0, 1, 1, 0, 0]])
    padded = model(ids, types, np.array([[1, 1, 1, 1, 1, 0, 0]]))
    short = model(ids[:, :5], types[:, :5])
    np.testing.assert_allclose(padded[0].numpy()[0, :5], short[0].numpy()[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(padded[1].numpy(), short[1].numpy(), rtol=1e-12, atol=1e-12)


@st.composite
def bert_configs(draw):
    heads = draw(st.sampled_from([1, 2]))
    return BertConfig(vocab_size=draw(st.integers(3, 6)), hidden_size=heads * draw(st.sampled_from([2, 3])),
                      num_hidden_layers=draw(st.integers(1, 2)), num_attention_heads=heads,
                      intermediate_size=draw(st.integers(2, 5)), max_position_embeddings=draw(st.integers(3, 5)),
                      type_vocab_size=draw(st.integers(1, 2)), hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, hidden_act=draw(st.sampled_from(["gelu", "gelu_new", "relu"])),
                      layer_norm_eps=1e-5, pad_token_id=None)  # torch gives the pad row no gradient by design


@settings(max_examples=10, deadline=None)
@given(config=bert_configs(), padded=st.booleans(), seed=st.integers(0, 2**16))
def test_pretraining_loss_gradient_matches_finite_differences(config, padded, seed):
    """Every parameter (the tied decoder counted once) in float64, weights far from init, MLM + NSP loss."""
    rng = np.random.default_rng(seed)
    model = BertForPreTraining(config).to(tt.float64)
    params = list(model.parameters())
    for param in params:
        param.data = rng.normal(0, 0.5, param.shape)
    time = config.max_position_embeddings
    ids = rng.integers(0, config.vocab_size, (2, time))
    types = rng.integers(0, config.type_vocab_size, (2, time))
    mask = np.ones_like(ids)
    if padded:
        mask[0, -1] = 0
    labels = np.where(rng.random((2, time)) < 0.5, ids, -100)
    labels[:, 1] = ids[:, 1]  # at least one counted label per row
    fast = sum(p.numel() for p in params) > 200
    assert tt.gradcheck(lambda *_: model.loss(*model(ids, types, mask), labels, np.array([0, 1])), params, fast=fast)


@settings(max_examples=5, deadline=None)
@given(config=bert_configs(), seed=st.integers(0, 2**16))
def test_classifier_loss_gradient_matches_finite_differences(config, seed):
    rng = np.random.default_rng(seed)
    model = BertForSequenceClassification(config).to(tt.float64)
    params = list(model.parameters())
    for param in params:
        param.data = rng.normal(0, 0.5, param.shape)
    ids = rng.integers(0, config.vocab_size, (2, config.max_position_embeddings))
    fast = sum(p.numel() for p in params) > 200
    assert tt.gradcheck(lambda *_: model.loss(model(ids), np.array([1, 0])), params, fast=fast)


@pytest.mark.parametrize("flag, value", [("position_embedding_type", "relative_key"), ("is_decoder", True),
                                         ("add_cross_attention", True), ("hidden_act", "gelu_10")])
def test_unsupported_config_value_is_named(tmp_path, flag, value):
    with pytest.raises(ValueError, match=flag):
        BertConfig(**{flag: value})
    config = {**json.loads((CHECKPOINT / "config.json").read_text()), flag: value}
    with pytest.raises(ValueError, match=flag):
        BertForPreTraining.from_pretrained(write_checkpoint(tmp_path, read_weights(CHECKPOINT), config))


def test_sequence_longer_than_max_position_embeddings_raises():
    with pytest.raises(ValueError, match="max_position_embeddings"):
        tiny_model()(np.ones((1, 13), dtype=np.int64))
