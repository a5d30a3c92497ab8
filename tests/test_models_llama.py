"""LLaMA: the same logits and AdamW losses as transformers (from the committed fixture), the files transformers
writes, legacy config forms, gradients, and cached generation.

tests/fixtures/make_llama_fixture.py wrote tests/fixtures/llama/ with transformers 5.24 + torch: tiny float64
checkpoints (GQA, rope_theta 5e5, untied and tied head) with weights far from init, and HF's logits (eager
attention, with its float32 RMSNorm/RoPE/softmax steps patched to float64) with and without padding.
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
from models.hf import read_weights
from tinytensor.io import CheckpointError
from models.llama import LlamaConfig, LlamaForCausalLM, LlamaModel
from tinytensor.optim import AdamW

FIXTURE = Path(__file__).parent / "fixtures" / "llama"
CHECKPOINTS = {"": FIXTURE / "checkpoint", "_tied": FIXTURE / "checkpoint_tied"}
REFERENCE = safetensors.numpy.load_file(FIXTURE / "reference.safetensors")
RECORD = json.loads((FIXTURE / "reference.json").read_text())
HF_CONFIG = json.loads((CHECKPOINTS[""] / "config.json").read_text())


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours − theirs| / max |theirs|: one number for a whole logits array."""
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def write_checkpoint(directory: Path, state: dict, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    safetensors.numpy.save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def logits_of(directory: Path, cls=LlamaForCausalLM, **kwargs) -> np.ndarray:
    return cls.from_pretrained(directory, dtype=tt.float64).eval()(REFERENCE["input_ids"], **kwargs).numpy()


def saved_layout(path: Path) -> tuple[dict, dict]:
    with safetensors.safe_open(str(path), framework="numpy") as file:
        keys = {key: [list(file.get_slice(key).get_shape()), file.get_slice(key).get_dtype()] for key in file.keys()}
        return keys, file.metadata()


# ---- parity with transformers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["", "_tied"])
def test_float64_logits_match_transformers_with_and_without_padding(variant):
    model = LlamaForCausalLM.from_pretrained(CHECKPOINTS[variant], dtype=tt.float64).eval()
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == (variant == "_tied")
    mask, real = REFERENCE["attention_mask"], REFERENCE["attention_mask"].astype(bool)
    plain = model(REFERENCE["input_ids"]).numpy()
    padded = model(REFERENCE["input_ids"], attention_mask=mask).numpy()
    assert plain.dtype == np.float64
    assert relative_error(plain, REFERENCE[f"logits_float64{variant}"]) <= 1e-10
    assert relative_error(padded[real], REFERENCE[f"logits_padded_float64{variant}"][real]) <= 1e-10
    assert relative_error(padded[real], plain[real]) > 1e-3  # the mask did change them


@pytest.mark.parametrize("variant", ["", "_tied"])
def test_float32_logits_match_transformers_float32(variant):
    model = LlamaForCausalLM.from_pretrained(CHECKPOINTS[variant]).eval()  # float32 by default
    mask, real = REFERENCE["attention_mask"], REFERENCE["attention_mask"].astype(bool)
    plain = model(REFERENCE["input_ids"]).numpy()
    padded = model(REFERENCE["input_ids"], attention_mask=mask).numpy()
    assert plain.dtype == np.float32
    assert relative_error(plain, REFERENCE[f"logits_float32{variant}"]) <= 1e-5
    assert relative_error(padded[real], REFERENCE[f"logits_padded_float32{variant}"][real]) <= 1e-5


def test_adamw_loss_trace_matches_torch():
    """Three AdamW steps on the padded batch from the fixture checkpoint: the same losses (labels are −100
    wherever the loss would read a pad, see make_llama_fixture.loss_labels)."""
    model = LlamaForCausalLM.from_pretrained(CHECKPOINTS[""], dtype=tt.float64).train()
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


# ---- files: what transformers writes, and the legacy forms it reads -----------------------------------------------
@pytest.mark.parametrize("variant, record_key", [("", "hf_saved_keys"), ("_tied", "hf_saved_keys_tied")])
def test_save_pretrained_writes_exactly_the_keys_shapes_dtypes_and_metadata_of_transformers(tmp_path, variant,
                                                                                            record_key):
    LlamaForCausalLM.from_pretrained(CHECKPOINTS[variant], dtype=tt.float64).save_pretrained(tmp_path)
    keys, metadata = saved_layout(tmp_path / "model.safetensors")
    assert keys == RECORD[record_key]
    assert metadata == RECORD["hf_metadata"] == {"format": "pt"}
    assert ("lm_head.weight" in keys) == (variant == "")


def test_save_pretrained_config_matches_transformers_config(tmp_path):
    LlamaForCausalLM.from_pretrained(CHECKPOINTS[""]).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["dtype"] == "float32" and config["architectures"] == ["LlamaForCausalLM"]
    assert "rope_theta" not in config and "rope_scaling" not in config
    for key, value in config.items():
        if key in HF_CONFIG and key != "dtype":
            assert value == HF_CONFIG[key] and type(value) is type(HF_CONFIG[key]), key


def test_legacy_top_level_rope_theta_and_inv_freq_buffers_load(tmp_path):
    """Pre-v5 files: `rope_theta` at the top level with `rope_scaling: null`, and persistent inv_freq buffers."""
    config = {key: value for key, value in HF_CONFIG.items() if key != "rope_parameters"}
    config.update(rope_theta=500000.0, rope_scaling=None, torch_dtype="float64")
    state = read_weights(CHECKPOINTS[""])
    for layer in range(HF_CONFIG["num_hidden_layers"]):
        state[f"model.layers.{layer}.self_attn.rotary_emb.inv_freq"] = np.ones(4)
    directory = write_checkpoint(tmp_path / "legacy", state, config)
    assert relative_error(logits_of(directory), REFERENCE["logits_float64"]) <= 1e-10
    LlamaForCausalLM.from_pretrained(directory).save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["rope_parameters"] == HF_CONFIG["rope_parameters"] and "rope_theta" not in saved


def test_rope_theta_changes_the_logits(tmp_path):
    """Without rope_theta the default 10000 applies, and the fixture's 5e5 is not matched: theta is read."""
    config = {key: value for key, value in HF_CONFIG.items() if key != "rope_parameters"}
    directory = write_checkpoint(tmp_path, read_weights(CHECKPOINTS[""]), config)
    assert relative_error(logits_of(directory), REFERENCE["logits_float64"]) > 1e-3


def test_trunk_loads_a_head_checkpoint_and_saves_bare_keys(tmp_path):
    head = LlamaForCausalLM.from_pretrained(CHECKPOINTS[""], dtype=tt.float64).eval()
    trunk = LlamaModel.from_pretrained(CHECKPOINTS[""], dtype=tt.float64).eval()
    np.testing.assert_array_equal(trunk(REFERENCE["input_ids"]).numpy(), head.model(REFERENCE["input_ids"]).numpy())
    trunk.save_pretrained(tmp_path)
    keys, _ = saved_layout(tmp_path / "model.safetensors")
    assert set(keys) == {key.removeprefix("model.") for key in RECORD["hf_saved_keys"] if key.startswith("model.")}


def test_tied_head_loads_a_trunk_checkpoint(tmp_path):
    state = {key.removeprefix("model."): value for key, value in read_weights(CHECKPOINTS["_tied"]).items()}
    config = json.loads((CHECKPOINTS["_tied"] / "config.json").read_text())
    directory = write_checkpoint(tmp_path, state, config)
    assert relative_error(logits_of(directory), REFERENCE["logits_float64_tied"]) <= 1e-10


def test_untied_checkpoint_without_lm_head_names_it(tmp_path):
    state = read_weights(CHECKPOINTS[""])
    del state["lm_head.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys \['lm_head.weight'\]"):
        LlamaForCausalLM.from_pretrained(write_checkpoint(tmp_path, state, HF_CONFIG))


def test_list_eos_token_id_round_trips(tmp_path):
    """LLaMA-3 configs list several eos ids; the list is kept, not forced to an int."""
    config = {**HF_CONFIG, "eos_token_id": [98, 99]}
    model = LlamaForCausalLM.from_pretrained(write_checkpoint(tmp_path / "in", read_weights(CHECKPOINTS[""]), config))
    assert model.config.eos_token_id == [98, 99]
    model.save_pretrained(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["eos_token_id"] == [98, 99]


# ---- config values: honoured or rejected by name ------------------------------------------------------------------
@pytest.mark.parametrize("overrides, named", [
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}}, "llama3"),
    ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "linear"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "rope_type"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"num_attention_heads": 4, "num_key_value_heads": 3}, "num_key_value_heads"),
])
def test_unsupported_config_value_raises_naming_it(tmp_path, overrides, named):
    with pytest.raises(ValueError, match=named):
        LlamaConfig(**overrides)
    config = {**HF_CONFIG, **overrides}
    with pytest.raises(ValueError, match=named):
        LlamaForCausalLM.from_pretrained(write_checkpoint(tmp_path, read_weights(CHECKPOINTS[""]), config))


def test_config_defaults_and_legacy_forms():
    assert LlamaConfig().rope_parameters == {"rope_type": "default", "rope_theta": 10000.0}
    assert LlamaConfig(rope_theta=5e5).rope_parameters["rope_theta"] == 5e5
    assert LlamaConfig(rope_scaling={"rope_type": "default", "rope_theta": 7.0}).rope_parameters["rope_theta"] == 7.0
    config = LlamaConfig(hidden_size=32, num_attention_heads=4)
    assert (config.num_key_value_heads, config.head_dim) == (4, 8)


def test_bias_flags_and_head_dim_shape_the_parameters():
    config = LlamaConfig(vocab_size=7, hidden_size=6, intermediate_size=5, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=4, attention_bias=True, mlp_bias=True)
    shapes = {name: tensor.shape for name, tensor in LlamaForCausalLM(config).state_dict().items()}
    assert shapes["model.layers.0.self_attn.q_proj.weight"] == (8, 6)
    assert shapes["model.layers.0.self_attn.k_proj.bias"] == (4,)
    assert shapes["model.layers.0.self_attn.o_proj.weight"] == (6, 8)
    assert shapes["model.layers.0.self_attn.o_proj.bias"] == (6,)
    assert shapes["model.layers.0.mlp.gate_proj.bias"] == (5,)
    assert shapes["model.layers.0.mlp.down_proj.bias"] == (6,)


# ---- gradients ----------------------------------------------------------------------------------------------------
@st.composite
def llama_configs(draw):
    heads = draw(st.sampled_from([1, 2]))
    return LlamaConfig(vocab_size=draw(st.integers(3, 6)), hidden_size=draw(st.sampled_from([2, 4])),
                       intermediate_size=draw(st.integers(2, 4)), num_hidden_layers=draw(st.integers(1, 2)),
                       num_attention_heads=heads, num_key_value_heads=draw(st.sampled_from([1, heads])),
                       head_dim=2, max_position_embeddings=draw(st.integers(3, 5)),
                       rope_parameters={"rope_type": "default", "rope_theta": draw(st.sampled_from([3.0, 1e4]))},
                       tie_word_embeddings=draw(st.booleans()), attention_bias=draw(st.booleans()),
                       mlp_bias=draw(st.booleans()))


@settings(max_examples=10)
@given(config=llama_configs(), padded=st.booleans(), seed=st.integers(0, 2**16))
def test_lm_loss_gradient_matches_finite_differences(config, padded, seed):
    """Every parameter (a tied embed_tokens/lm_head counted once) in float64, weights far from init; GQA on
    (2 heads, 1 kv head) and off, tied and untied, with and without biases."""
    rng = np.random.default_rng(seed)
    model = LlamaForCausalLM(config).to(tt.float64)
    params = list(model.parameters())
    for param in params:
        param.data = rng.normal(0, 0.5, param.shape)
    ids = rng.integers(0, config.vocab_size, (2, config.max_position_embeddings))
    mask = np.ones_like(ids)
    if padded:
        mask[0, 0] = 0
    labels = np.where(mask == 1, ids, -100)
    fast = sum(p.numel() for p in params) > 200
    assert tt.gradcheck(lambda *_: model.loss(model(ids, attention_mask=mask), labels), params, fast=fast)


# ---- generation ---------------------------------------------------------------------------------------------------
def tiny_model(**overrides) -> LlamaForCausalLM:
    config = dict(vocab_size=23, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=12, rope_theta=100.0)
    model = LlamaForCausalLM(LlamaConfig(**{**config, **overrides})).to(tt.float64)
    for param in model.parameters():  # large weights, so greedy choices are not near-ties
        param.data = np.random.default_rng(1).normal(0, 0.5, param.shape)
    return model


def test_sequence_longer_than_max_position_embeddings_raises():
    with pytest.raises(ValueError, match="max_position_embeddings"):
        tiny_model()(np.zeros((1, 13), dtype=np.int64))
