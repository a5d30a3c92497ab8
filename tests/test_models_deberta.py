"""DeBERTa (v1): the same outputs and AdamW losses as transformers (from the committed fixture), checkpoints,
the disentangled attention against a loop-by-loop reading of the paper, the enhanced mask decoder, gradients.

tests/fixtures/make_deberta_fixture.py wrote tests/fixtures/deberta/ with transformers 5.24 + torch: two tiny float64
DebertaForMaskedLM checkpoints with weights far from init ("main": clipped relative positions, token types, legacy
head; "biased": absolute positions in the input, legacy=false head), HF's eager outputs with and without padding
(float64 with HF's float32 LayerNorm and scale patched to float64 = "exact64", unpatched = "hf64", and float32),
an AdamW loss trace and the keys, shapes and dtypes transformers saved.
"""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as tt
from models.deberta import DebertaConfig, DebertaForMaskedLM, DebertaModel, relative_index
from models.hf import read_config, read_weights
from tinytensor.optim import AdamW

FIXTURE = Path(__file__).parent / "fixtures" / "deberta"
MAIN, BIASED = FIXTURE / "main" / "checkpoint", FIXTURE / "biased" / "checkpoint"
REFERENCE = safetensors.numpy.load_file(FIXTURE / "reference.safetensors")
RECORD = json.loads((FIXTURE / "reference.json").read_text())
IDS, TYPES, MASK, LABELS = (REFERENCE[name] for name in ("input_ids", "token_type_ids", "attention_mask", "labels"))
REAL = MASK.astype(bool)
VARIANTS = {"main": MAIN, "biased": BIASED}


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours − theirs| / max |theirs|: one number for a whole array."""
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def outputs_of(model: DebertaForMaskedLM, padded: bool) -> dict[str, np.ndarray]:
    mask = MASK if padded else None
    return {"last_hidden_state": model.deberta(IDS, TYPES, mask).numpy(), "logits": model(IDS, TYPES, mask).numpy()}


def write_checkpoint(directory: Path, state: dict, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    safetensors.numpy.save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def saved_layout(path: Path) -> tuple[dict, dict]:
    with safetensors.safe_open(str(path), framework="numpy") as file:
        keys = {key: [list(file.get_slice(key).get_shape()), file.get_slice(key).get_dtype()] for key in file.keys()}
        return keys, file.metadata()


@pytest.fixture(scope="module")
def models64() -> dict[str, DebertaForMaskedLM]:
    return {name: DebertaForMaskedLM.from_pretrained(path, dtype=tt.float64).eval() for name, path in VARIANTS.items()}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("padded", [False, True])
def test_float64_outputs_match_transformers_with_its_float32_steps_patched_out(models64, variant, padded):
    """Hidden states and logits at real positions (pad rows attend to nothing and are unspecified)."""
    kind = "padded" if padded else "plain"
    ours = outputs_of(models64[variant], padded)
    real = REAL if padded else slice(None)
    for name, value in ours.items():
        assert value.dtype == np.float64
        assert relative_error(value[real], REFERENCE[f"{variant}_{name}_{kind}_exact64"][real]) <= 1e-10, name
    if padded:  # the mask did change the real positions
        assert relative_error(ours["logits"][REAL], REFERENCE[f"{variant}_logits_plain_exact64"][REAL]) > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_float64_outputs_match_unpatched_transformers_to_its_float32_layer_norm(models64, variant):
    """Transformers' own float64 DeBERTa normalises in float32 (≈1e-6 of the logits' scale here)."""
    ours = outputs_of(models64[variant], padded=True)
    for name, value in ours.items():
        assert relative_error(value[REAL], REFERENCE[f"{variant}_{name}_padded_hf64"][REAL]) <= 1e-6, name


@pytest.mark.parametrize("variant", VARIANTS)
def test_float32_outputs_match_transformers_float32(variant):
    model = DebertaForMaskedLM.from_pretrained(VARIANTS[variant]).eval()  # float32 by default
    for padded, kind in ((False, "plain"), (True, "padded")):
        real = REAL if padded else slice(None)
        for name, value in outputs_of(model, padded).items():
            assert value.dtype == np.float32
            assert relative_error(value[real], REFERENCE[f"{variant}_{name}_{kind}_float32"][real]) <= 1e-5, name


def test_adamw_loss_trace_matches_torch():
    """Three AdamW steps on the padded batch's MLM loss (labels -100 where unmasked): the same losses."""
    model = DebertaForMaskedLM.from_pretrained(MAIN, dtype=tt.float64).train()
    hyper = RECORD["adamw"]
    optimizer = AdamW(model.parameters(), lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"],
                      weight_decay=hyper["weight_decay"])
    losses = []
    for step in range(len(RECORD["adamw_losses"])):
        loss = model.loss(model(IDS, TYPES, MASK), LABELS)
        losses.append(loss.item())
        if step < len(RECORD["adamw_losses"]) - 1:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    np.testing.assert_allclose(losses, RECORD["adamw_losses"], rtol=1e-10)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_pretrained_writes_exactly_the_keys_shapes_dtypes_and_config_of_transformers(models64, variant,
                                                                                           tmp_path):
    models64[variant].save_pretrained(tmp_path)
    keys, metadata = saved_layout(tmp_path / "model.safetensors")
    assert keys == RECORD[variant]["hf_saved_keys"]
    assert metadata == RECORD[variant]["hf_metadata"] == {"format": "pt"}
    assert not any(key.startswith("cls.predictions.decoder") for key in keys)
    config = json.loads((tmp_path / "config.json").read_text())
    hf_config = json.loads((VARIANTS[variant] / "config.json").read_text())
    assert config["architectures"] == ["DebertaForMaskedLM"] and config["model_type"] == "deberta"
    for key, value in config.items():
        if key in hf_config and key not in ("architectures", "transformers_version"):
            assert value == hf_config[key] and type(value) is type(hf_config[key]), key


def test_deberta_model_loads_a_masked_lm_checkpoint_ignoring_the_head(models64, tmp_path):
    trunk = DebertaModel.from_pretrained(MAIN, dtype=tt.float64).eval()
    np.testing.assert_array_equal(trunk(IDS, TYPES, MASK).numpy(), models64["main"].deberta(IDS, TYPES, MASK).numpy())
    trunk.save_pretrained(tmp_path)
    keys, _ = saved_layout(tmp_path / "model.safetensors")
    assert set(keys) == {key.removeprefix("deberta.") for key in RECORD["main"]["hf_saved_keys"]
                         if key.startswith("deberta.")}


def test_original_checkpoint_form_loads(tmp_path):
    """Old files: gamma/beta names, a position_ids buffer, the tied decoder written out, and a position table
    although position_biased_input is false (skipped, as transformers does), pos_att_type as "c2p|p2c"."""
    state = read_weights(MAIN)
    for name in [name for name in state if "LayerNorm" in name]:
        state[name.replace(".weight", ".gamma").replace(".bias", ".beta")] = state.pop(name)
    state["deberta.embeddings.position_ids"] = np.arange(64)[None]
    state["deberta.embeddings.position_embeddings.weight"] = np.ones((64, 32))
    state["cls.predictions.decoder.weight"] = state["deberta.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    config = {**json.loads((MAIN / "config.json").read_text()), "pos_att_type": "C2P|P2C"}
    model = DebertaForMaskedLM.from_pretrained(write_checkpoint(tmp_path, state, config), dtype=tt.float64).eval()
    assert model.config.pos_att_type == ["c2p", "p2c"]
    assert model.cls.predictions.decoder.weight is model.deberta.embeddings.word_embeddings.weight
    logits = model(IDS, TYPES, MASK).numpy()
    assert relative_error(logits[REAL], REFERENCE["main_logits_padded_exact64"][REAL]) <= 1e-10


def test_relative_index_clips_distances_beyond_max_relative_positions():
    """δ(i, j) = clip(i − j + span, 0, 2·span − 1): row span is distance 0, the ends are shared beyond ±span."""
    index = relative_index(np, 6, 2)
    assert index[3, 3] == 2 and index[3, 2] == 3 and index[2, 3] == 1
    assert index[5, 0] == 3 and index[0, 5] == 0


def loop_attention_scores(attention, hidden: np.ndarray, table: np.ndarray) -> np.ndarray:
    """He et al. 2020 eq. 4 read one (head, i, j) at a time, with Hugging Face's δ(i, j) for both terms, over the
    *full* table: δ = clip(i − j + mrp, 0, 2·mrp − 1). Returns the pre-softmax scores [nh, T, T] of batch row 0."""
    weight = attention.in_proj.weight.numpy()
    heads, time, mrp = attention.num_heads, hidden.shape[0], attention.span
    d = weight.shape[1] // heads
    qkv = hidden @ weight.T                                                   # [T, 3H], per-head (q, k, v) blocks
    rel_keys, rel_queries = table @ attention.pos_proj.weight.numpy().T, table @ attention.pos_q_proj.weight.numpy().T
    rel_queries = rel_queries + attention.pos_q_proj.bias.numpy()
    scores = np.zeros((heads, time, time))
    for h in range(heads):
        q = (qkv[:, 3 * d * h:3 * d * h + d] + attention.q_bias.numpy()[h * d:(h + 1) * d]) / attention.scale
        k = qkv[:, 3 * d * h + d:3 * d * h + 2 * d]
        for i in range(time):
            for j in range(time):
                delta = min(max(i - j + mrp, 0), 2 * mrp - 1)
                c2c = q[i] @ k[j]
                c2p = q[i] @ rel_keys[delta, h * d:(h + 1) * d]
                p2c = k[j] @ rel_queries[delta, h * d:(h + 1) * d] / attention.scale
                scores[h, i, j] = c2c + c2p + p2c
    return scores


def test_disentangled_scores_equal_the_paper_read_pair_by_pair(models64):
    """Our batched, sliced-table gathers give eq. 4 term by term (T = 12 > mrp = 8, so clipping is exercised)."""
    attention = models64["main"].deberta.encoder.layer[0].attention.self
    hidden = np.random.default_rng(0).normal(0, 1, (1, 12, 32))
    x = tt.tensor(hidden)
    query, key, _ = attention.heads(attention.in_proj(x)).chunk(3, dim=-1)
    query = (query + attention.heads(attention.q_bias.reshape(1, -1))) / attention.scale
    table = models64["main"].deberta.encoder.rel_table()
    ours = (query @ key.transpose(-1, -2) + attention.relative_scores(query, key, table)).numpy()[0]
    np.testing.assert_allclose(ours, loop_attention_scores(attention, hidden[0], table.numpy()), rtol=1e-12,
                               atol=1e-12)


def tiny_model(**overrides) -> DebertaForMaskedLM:
    config = dict(vocab_size=23, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                  max_position_embeddings=12, relative_attention=True, max_relative_positions=3,
                  pos_att_type=["c2p", "p2c"], position_biased_input=False, type_vocab_size=2,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = DebertaForMaskedLM(DebertaConfig(**{**config, **overrides})).to(tt.float64).eval()
    rng = np.random.default_rng(1)
    for param in model.parameters():
        param.data = rng.normal(0, 0.5, param.shape)
    return model


def test_right_padding_does_not_change_real_positions():
    model = tiny_model()
    ids, types = np.array([[2, 5, 6, 7, 8, 0, 0]]), np.array([[0, 0, 0, 1, 1, 0, 0]])
    padded = model(ids, types, np.array([[1, 1, 1, 1, 1, 0, 0]])).numpy()
    short = model(ids[:, :5], types[:, :5]).numpy()
    np.testing.assert_allclose(padded[0, :5], short[0], rtol=1e-12, atol=1e-12)


def test_enhanced_mask_decoder_injects_absolute_positions_and_round_trips(tmp_path):
    """EMD (beyond transformers): the penultimate layer + positions, the last layer twice. It changes the logits,
    depends on the position table, and saves and loads that table under transformers' name."""
    plain = tiny_model()
    emd = tiny_model(enhanced_mask_decoder=True)
    ids, mask = np.array([[2, 5, 6, 7, 8, 0]]), np.array([[1, 1, 1, 1, 1, 0]])
    emd.load_state_dict({**plain.state_dict(), "deberta.embeddings.position_embeddings.weight":
                         emd.deberta.embeddings.position_embeddings.weight})
    logits = emd(ids, None, mask).numpy()
    assert relative_error(logits[0, :5], plain(ids, None, mask).numpy()[0, :5]) > 1e-3
    emd.save_pretrained(tmp_path)
    assert "deberta.embeddings.position_embeddings.weight" in saved_layout(tmp_path / "model.safetensors")[0]
    again = DebertaForMaskedLM.from_pretrained(tmp_path, dtype=tt.float64).eval()
    np.testing.assert_array_equal(again(ids, None, mask).numpy(), logits)
    emd.deberta.embeddings.position_embeddings.weight.data[:] = 0  # positions are what it adds
    assert relative_error(emd(ids, None, mask).numpy()[0, :5], logits[0, :5]) > 1e-3


@pytest.mark.parametrize("flag, value", [("pos_att_type", ["p2p"]), ("embedding_size", 8), ("talking_head", True),
                                         ("hidden_act", "gelu_10"), ("enhanced_mask_decoder", True)])
def test_unsupported_config_value_is_named(flag, value):
    with pytest.raises(ValueError, match=flag):
        dataclasses.replace(read_config(DebertaConfig, BIASED), **{flag: value})


def test_sequence_longer_than_max_position_embeddings_raises():
    with pytest.raises(ValueError, match="max_position_embeddings"):
        tiny_model()(np.ones((1, 13), dtype=np.int64))


@st.composite
def deberta_configs(draw):
    heads = draw(st.sampled_from([1, 2]))
    biased = draw(st.booleans())
    return DebertaConfig(vocab_size=draw(st.integers(3, 6)), hidden_size=heads * draw(st.sampled_from([2, 3])),
                         num_hidden_layers=draw(st.integers(1, 2)), num_attention_heads=heads,
                         intermediate_size=draw(st.integers(2, 5)), max_position_embeddings=draw(st.integers(3, 5)),
                         type_vocab_size=draw(st.integers(0, 2)), relative_attention=draw(st.booleans()),
                         max_relative_positions=draw(st.integers(-1, 3)), position_biased_input=biased,
                         pos_att_type=draw(st.sampled_from([[], ["c2p"], ["p2c"], ["c2p", "p2c"]])),
                         legacy=draw(st.booleans()), enhanced_mask_decoder=not biased and draw(st.booleans()),
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                         hidden_act=draw(st.sampled_from(["gelu", "gelu_new", "relu"])), layer_norm_eps=1e-5,
                         pad_token_id=None)  # torch gives the pad row no gradient by design


@settings(max_examples=12, deadline=None)
@given(config=deberta_configs(), mask=st.lists(st.booleans(), min_size=10, max_size=10), seed=st.integers(0, 2**16))
def test_masked_lm_loss_gradient_matches_finite_differences(config, mask, seed):
    """Every parameter (the tied decoder counted once) in float64, weights far from init, drawn padding."""
    rng = np.random.default_rng(seed)
    model = DebertaForMaskedLM(config).to(tt.float64)
    params = list(model.parameters())
    for param in params:
        param.data = rng.normal(0, 0.5, param.shape)
    time = config.max_position_embeddings
    ids = rng.integers(0, config.vocab_size, (2, time))
    types = rng.integers(0, max(config.type_vocab_size, 1), (2, time))
    attention_mask = np.array(mask[:2 * time]).reshape(2, time).astype(np.int64)
    attention_mask[:, 1] = 1  # at least one real token per row
    labels = np.where((rng.random((2, time)) < 0.5) & (attention_mask == 1), ids, -100)
    labels[:, 1] = ids[:, 1]
    fast = sum(p.numel() for p in params) > 200
    assert tt.gradcheck(lambda *_: model.loss(model(ids, types, attention_mask), labels), params, fast=fast)
