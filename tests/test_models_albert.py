"""ALBERT: the same outputs and AdamW losses as transformers (from the committed fixture), checkpoints, gradients.

tests/fixtures/make_albert_fixture.py wrote tests/fixtures/albert/ with transformers 5.24 + torch: two tiny float64
AlbertForPreTraining checkpoints (embedding_size 16 ≠ hidden_size 32, 3 layer steps; `shared`: one layer serves
every step; `grouped`: 2 groups of 2 layers) with weights far from init, token types, and HF's outputs (eager
attention) with and without padding, an AdamW loss trace, HF's parameter count and the keys, shapes and dtypes
transformers saved.
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
from models.albert import AlbertConfig, AlbertForMaskedLM, AlbertForPreTraining, AlbertModel
from models.hf import read_weights
from tinytensor.io import CheckpointError
from tinytensor.optim import AdamW

FIXTURE = Path(__file__).parent / "fixtures" / "albert"
REFERENCE = safetensors.numpy.load_file(FIXTURE / "reference.safetensors")
RECORD = json.loads((FIXTURE / "reference.json").read_text())
VARIANTS = list(RECORD["variants"])  # "shared" (num_hidden_groups 1), "grouped" (2 groups × 2 inner layers)
IDS, TYPES, MASK = REFERENCE["input_ids"], REFERENCE["token_type_ids"], REFERENCE["attention_mask"]
REAL = MASK.astype(bool)


def checkpoint(variant: str) -> Path:
    return FIXTURE / variant / "checkpoint"


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours − theirs| / max |theirs|: one number for a whole array."""
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def outputs_of(model: AlbertForPreTraining, padded: bool) -> dict[str, np.ndarray]:
    """Our four outputs, named as in the fixture."""
    mask = MASK if padded else None
    hidden, pooled = model.albert(IDS, TYPES, mask)
    mlm, sop = model(IDS, TYPES, mask)
    return {"last_hidden_state": hidden.numpy(), "pooler_output": pooled.numpy(), "prediction_logits": mlm.numpy(),
            "sop_logits": sop.numpy()}


def write_checkpoint(directory: Path, state: dict, config: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = config or json.loads((checkpoint("shared") / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config))
    safetensors.numpy.save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def saved_layout(path: Path) -> tuple[dict, dict]:
    with safetensors.safe_open(str(path), framework="numpy") as file:
        keys = {key: [list(file.get_slice(key).get_shape()), file.get_slice(key).get_dtype()] for key in file.keys()}
        return keys, file.metadata()


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model64(variant) -> AlbertForPreTraining:
    return AlbertForPreTraining.from_pretrained(checkpoint(variant), dtype=tt.float64).eval()


@pytest.mark.parametrize("padded", [False, True])
def test_float64_outputs_match_transformers(variant, model64, padded):
    """Hidden states and MLM logits at real positions; pooled and SOP outputs read position 0, a pad in row 0 of
    the padded batch, yet agree too since only keys are masked (as in transformers)."""
    kind = "padded" if padded else "plain"
    ours = outputs_of(model64, padded)
    for name, value in ours.items():
        theirs = REFERENCE[f"{variant}_{name}_{kind}_float64"]
        assert value.dtype == np.float64
        real = REAL if padded and value.ndim == 3 else slice(None)
        assert relative_error(value[real], theirs[real]) <= 1e-10, name
    if padded:  # the mask did change the real positions
        plain = REFERENCE[f"{variant}_prediction_logits_plain_float64"]
        assert relative_error(ours["prediction_logits"][REAL], plain[REAL]) > 1e-3


def test_float32_outputs_match_transformers_float32(variant):
    model = AlbertForPreTraining.from_pretrained(checkpoint(variant)).eval()  # float32 by default
    for padded, kind in ((False, "plain"), (True, "padded")):
        for name, value in outputs_of(model, padded).items():
            assert value.dtype == np.float32
            real = REAL if padded and value.ndim == 3 else slice(None)
            theirs = REFERENCE[f"{variant}_{name}_{kind}_float32"]
            assert relative_error(value[real], theirs[real]) <= 1e-5, name


@pytest.mark.parametrize("flag", ["gelu", "relu"])
def test_hidden_act_and_layer_norm_eps_come_from_the_config(flag):
    config = AlbertConfig(**{**RECORD["config"], **RECORD["variants"]["shared"]["overrides"], **RECORD["flags"][flag]})
    model = AlbertForPreTraining(config).to(tt.float64).eval()
    model.load_hf_state_dict(read_weights(checkpoint("shared")))
    logits = model(IDS, TYPES, MASK)[0].numpy()
    assert relative_error(logits[REAL], REFERENCE[f"shared_prediction_logits_{flag}_float64"][REAL]) <= 1e-10
    default = REFERENCE["shared_prediction_logits_padded_float64"]  # gelu_new: tanh and erf differ by up to 5e-4
    assert relative_error(logits[REAL], default[REAL]) > 1e-5


def test_adamw_loss_trace_matches_torch(variant):
    """Three AdamW steps on the padded batch, MLM (labels -100 where unmasked) + SOP loss: the same losses, so
    the shared layers' summed gradients and the tied decoder's update agree with torch."""
    model = AlbertForPreTraining.from_pretrained(checkpoint(variant), dtype=tt.float64).train()
    hyper, expected = RECORD["adamw"], RECORD["variants"][variant]["adamw_losses"]
    optimizer = AdamW(model.parameters(), lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"],
                      weight_decay=hyper["weight_decay"])
    losses = []
    for step in range(len(expected)):
        mlm, sop = model(IDS, TYPES, MASK)
        loss = model.loss(mlm, sop, REFERENCE["labels"], REFERENCE["sentence_order_label"])
        losses.append(loss.item())
        if step < len(expected) - 1:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    np.testing.assert_allclose(losses, expected, rtol=1e-10)


def test_save_pretrained_writes_exactly_the_keys_shapes_dtypes_and_metadata_of_transformers(variant, model64,
                                                                                             tmp_path):
    model64.save_pretrained(tmp_path)
    keys, metadata = saved_layout(tmp_path / "model.safetensors")
    assert keys == RECORD["variants"][variant]["hf_saved_keys"]
    assert metadata == RECORD["variants"][variant]["hf_metadata"] == {"format": "pt"}
    assert not any(key.startswith("predictions.decoder") for key in keys)
    config = json.loads((tmp_path / "config.json").read_text())
    hf_config = json.loads((checkpoint(variant) / "config.json").read_text())
    assert config["architectures"] == ["AlbertForPreTraining"] and config["model_type"] == "albert"
    for key, value in config.items():
        if key in hf_config and key != "architectures":
            assert value == hf_config[key] and type(value) is type(hf_config[key]), key


def test_num_parameters_equals_transformers(variant, model64):
    """Shared layers and the tied decoder count once, as in transformers' num_parameters()."""
    assert model64.num_parameters() == RECORD["variants"][variant]["hf_num_parameters"]


def test_parameter_count_is_albert_factorized_and_shared():
    """V·E + E·H for the vocabulary instead of V·H (the paper's §3.1), and one layer's weights however many steps."""
    config = dict(vocab_size=1000, embedding_size=8, hidden_size=64, num_attention_heads=4, intermediate_size=128)
    one_step = AlbertModel(AlbertConfig(**config, num_hidden_layers=1))
    twelve_steps = AlbertModel(AlbertConfig(**config, num_hidden_layers=12))
    assert twelve_steps.num_parameters() == one_step.num_parameters()
    word, mapping = twelve_steps.embeddings.word_embeddings.weight, twelve_steps.encoder.embedding_hidden_mapping_in
    assert word.shape == (1000, 8) and mapping.weight.shape == (64, 8)


@pytest.mark.parametrize("layers, groups, expected", [(3, 1, [0, 0, 0]), (3, 2, [0, 0, 1]), (5, 2, [0, 0, 0, 1, 1]),
                                                      (6, 3, [0, 0, 1, 1, 2, 2]), (2, 4, [0, 2])])
def test_each_step_runs_the_group_transformers_picks(layers, groups, expected):
    """int(i / (L / G)), float division then truncation; with G > L some groups are never used, as in HF."""
    config = AlbertConfig(vocab_size=5, embedding_size=2, hidden_size=2, num_attention_heads=1, intermediate_size=2,
                          num_hidden_layers=layers, num_hidden_groups=groups)
    encoder = AlbertModel(config).encoder
    assert [encoder.group_of_step(step) for step in range(layers)] == expected


def tiny_config(**overrides) -> AlbertConfig:
    config = dict(vocab_size=11, embedding_size=4, hidden_size=6, num_hidden_layers=3, num_attention_heads=2,
                  intermediate_size=5, max_position_embeddings=6, layer_norm_eps=1e-5,
                  classifier_dropout_prob=0.0)  # every dropout off: gradients must be deterministic
    return AlbertConfig(**{**config, **overrides})


def test_shared_layer_receives_the_sum_of_its_uses_gradients():
    """One layer used at 3 steps gets the sum of the gradients that 3 separate copies of it (num_hidden_groups 3,
    each group's weights set equal to the shared one's) receive; every other gradient is unchanged."""
    rng = np.random.default_rng(0)
    shared = AlbertForPreTraining(tiny_config(num_hidden_groups=1)).to(tt.float64)
    copies = AlbertForPreTraining(tiny_config(num_hidden_groups=3)).to(tt.float64)
    for param in shared.parameters():
        param.data = rng.normal(0, 0.5, param.shape)
    shared_params = dict(shared.named_parameters())
    group = "albert.encoder.albert_layer_groups.{}."
    for name, param in copies.named_parameters():
        param.data = shared_params[name.replace(group.format(1), group.format(0))
                                   .replace(group.format(2), group.format(0))].data.copy()
    ids, types = rng.integers(1, 11, (2, 6)), rng.integers(0, 2, (2, 6))
    labels, order = np.where(rng.random((2, 6)) < 0.5, ids, -100), np.array([1, 0])
    labels[:, 0] = ids[:, 0]
    losses = [model.loss(*model(ids, types, np.ones((2, 6))), labels, order) for model in (shared, copies)]
    assert losses[0].item() == pytest.approx(losses[1].item(), rel=1e-14)
    for loss in losses:
        loss.backward()
    copy_params = dict(copies.named_parameters())
    for name, param in shared_params.items():
        uses = [copy_params[name.replace(group.format(0), group.format(step))] for step in range(3)] \
            if name.startswith(group.format(0)) else [copy_params[name]]
        np.testing.assert_allclose(param.grad.numpy(), sum(use.grad.numpy() for use in uses), rtol=1e-10,
                                   atol=1e-13, err_msg=name)
    ffn = group.format(0) + "albert_layers.0.ffn.weight"
    assert not np.allclose(copy_params[ffn].grad.numpy(), shared_params[ffn].grad.numpy())  # one use ≠ the sum


def test_albert_model_loads_a_pretraining_checkpoint_ignoring_heads(tmp_path):
    full = AlbertForPreTraining.from_pretrained(checkpoint("grouped"), dtype=tt.float64).eval()
    trunk = AlbertModel.from_pretrained(checkpoint("grouped"), dtype=tt.float64).eval()
    for ours, expected in zip(trunk(IDS, TYPES, MASK), full.albert(IDS, TYPES, MASK)):
        np.testing.assert_array_equal(ours.numpy(), expected.numpy())
    trunk.save_pretrained(tmp_path)
    keys, _ = saved_layout(tmp_path / "model.safetensors")
    hf_keys = RECORD["variants"]["grouped"]["hf_saved_keys"]
    assert set(keys) == {key.removeprefix("albert.") for key in hf_keys if key.startswith("albert.")}
    with pytest.raises(CheckpointError, match="missing keys.*predictions.bias"):  # a trunk file has no heads
        AlbertForPreTraining.from_pretrained(tmp_path)


def test_legacy_gamma_beta_position_ids_and_explicit_decoder_load(tmp_path):
    """An old file: LayerNorm gamma/beta, a persistent position_ids buffer, and the tied decoder written out."""
    state = read_weights(checkpoint("shared"))
    for name in [name for name in state if "LayerNorm" in name or "layer_norm" in name]:
        state[name.replace(".weight", ".gamma").replace(".bias", ".beta")] = state.pop(name)
    state["albert.embeddings.position_ids"] = np.arange(64)[None]
    state["predictions.decoder.weight"] = state["albert.embeddings.word_embeddings.weight"]
    state["predictions.decoder.bias"] = state["predictions.bias"]
    model = AlbertForPreTraining.from_pretrained(write_checkpoint(tmp_path, state), dtype=tt.float64).eval()
    assert model.predictions.decoder.weight is model.albert.embeddings.word_embeddings.weight
    assert model.predictions.decoder.bias is model.predictions.bias
    logits = model(IDS, TYPES)[0].numpy()
    assert relative_error(logits, REFERENCE["shared_prediction_logits_plain_float64"]) <= 1e-10


def test_masked_lm_loads_a_pretraining_checkpoint_and_saves_its_own_layout(tmp_path):
    model = AlbertForMaskedLM.from_pretrained(checkpoint("shared"), dtype=tt.float64).eval()
    logits = model(IDS, TYPES, MASK).numpy()
    assert relative_error(logits[REAL], REFERENCE["shared_prediction_logits_padded_float64"][REAL]) <= 1e-10
    model.save_pretrained(tmp_path)
    keys, _ = saved_layout(tmp_path / "model.safetensors")
    assert set(keys) == {key for key in RECORD["variants"]["shared"]["hf_saved_keys"]
                         if not key.startswith(("albert.pooler.", "sop_classifier."))}


def test_untied_decoder_keeps_its_own_weight_and_bias(tmp_path):
    config = {**json.loads((checkpoint("shared") / "config.json").read_text()), "tie_word_embeddings": False}
    state = read_weights(checkpoint("shared"))
    state["predictions.decoder.weight"] = state["albert.embeddings.word_embeddings.weight"] * 2
    state["predictions.decoder.bias"] = np.ones(100)
    model = AlbertForPreTraining.from_pretrained(write_checkpoint(tmp_path / "decoder", state, config))
    assert model.predictions.decoder.weight is not model.albert.embeddings.word_embeddings.weight
    assert model.predictions.decoder.bias is not model.predictions.bias
    model.save_pretrained(tmp_path / "saved")
    assert "predictions.decoder.bias" in saved_layout(tmp_path / "saved" / "model.safetensors")[0]


def test_pad_token_row_gets_no_embedding_gradient_as_in_torch():
    """word_embeddings has padding_idx = pad_token_id (0), so torch gives that row no gradient; so do we."""
    model = AlbertModel(tiny_config()).to(tt.float64)
    pooled = model(np.array([[2, 0, 0, 3]]))[1]
    (pooled * tt.tensor(np.random.default_rng(0).normal(size=pooled.shape))).sum().backward()
    word_grad = model.embeddings.word_embeddings.weight.grad.numpy()
    assert (word_grad[0] == 0).all() and (word_grad[2] != 0).any()


@st.composite
def albert_configs(draw):
    heads = draw(st.sampled_from([1, 2]))
    return tiny_config(vocab_size=draw(st.integers(3, 6)), embedding_size=draw(st.integers(2, 4)),
                       hidden_size=heads * draw(st.sampled_from([2, 3])), num_attention_heads=heads,
                       num_hidden_layers=draw(st.integers(1, 3)), num_hidden_groups=draw(st.integers(1, 2)),
                       inner_group_num=draw(st.integers(1, 2)), intermediate_size=draw(st.integers(2, 5)),
                       max_position_embeddings=draw(st.integers(3, 5)), type_vocab_size=draw(st.integers(1, 2)),
                       hidden_act=draw(st.sampled_from(["gelu_new", "gelu", "relu"])),
                       pad_token_id=None)  # torch gives the pad row no gradient by design


@settings(max_examples=10, deadline=None)
@given(config=albert_configs(), padded=st.booleans(), seed=st.integers(0, 2**16))
def test_pretraining_loss_gradient_matches_finite_differences(config, padded, seed):
    """Every parameter (shared layers and the tied decoder counted once) in float64, weights far from init,
    MLM + SOP loss."""
    rng = np.random.default_rng(seed)
    model = AlbertForPreTraining(config).to(tt.float64)
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


@pytest.mark.parametrize("flag, value", [("position_embedding_type", "relative_key"), ("hidden_act", "gelu_10"),
                                         ("num_hidden_groups", 0), ("num_attention_heads", 5)])
def test_unsupported_config_value_is_named(tmp_path, flag, value):
    with pytest.raises(ValueError, match=flag):
        AlbertConfig(**{flag: value})
    config = {**json.loads((checkpoint("shared") / "config.json").read_text()), flag: value}
    with pytest.raises(ValueError, match=flag):
        AlbertForPreTraining.from_pretrained(write_checkpoint(tmp_path, read_weights(checkpoint("shared")), config))


def test_sequence_longer_than_max_position_embeddings_raises():
    with pytest.raises(ValueError, match="max_position_embeddings"):
        AlbertModel(tiny_config())(np.ones((1, 7), dtype=np.int64))
