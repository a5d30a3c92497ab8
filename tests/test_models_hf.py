"""models/hf.py: reading every checkpoint form transformers reads, and writing exactly what it writes.

Each test rewrites the committed GPT-2 fixture (tests/fixtures/gpt2/checkpoint, saved by transformers 5.24) into
another form in a temporary directory, and checks that the model loads to the same logits or fails naming what
is wrong. The key list, shapes, dtypes and metadata transformers wrote are recorded in reference.json.
"""
import ast
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy

import tinytensor as tt
from models import bert, classification
from models.gpt2 import GPT2LMHeadModel, GPT2Model
from models.hf import read_weights
from tinytensor.io import CheckpointError

FIXTURE = Path(__file__).parent / "fixtures" / "gpt2"
CHECKPOINT = FIXTURE / "checkpoint"
RECORD = json.loads((FIXTURE / "reference.json").read_text())
INPUT_IDS = safetensors.numpy.load_file(FIXTURE / "reference.safetensors")["input_ids"]
HF_LOGITS = safetensors.numpy.load_file(FIXTURE / "reference.safetensors")["logits_float64"]


def write_checkpoint(directory: Path, state: dict, config: dict | None = None) -> Path:
    """A checkpoint directory with the fixture's config (or `config`) and `state` as model.safetensors."""
    directory.mkdir(parents=True, exist_ok=True)
    config = config or json.loads((CHECKPOINT / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps(config))
    safetensors.numpy.save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def logits_of(directory: Path, cls=GPT2LMHeadModel) -> np.ndarray:
    return cls.from_pretrained(directory, dtype=tt.float64).eval()(INPUT_IDS).numpy()


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def saved_layout(path: Path) -> tuple[dict, dict]:
    with safetensors.safe_open(str(path), framework="numpy") as file:
        keys = {key: [list(file.get_slice(key).get_shape()), file.get_slice(key).get_dtype()] for key in file.keys()}
        return keys, file.metadata()


def test_save_pretrained_writes_exactly_the_keys_shapes_dtypes_and_metadata_of_transformers(tmp_path):
    GPT2LMHeadModel.from_pretrained(CHECKPOINT, dtype=tt.float64).save_pretrained(tmp_path)
    keys, metadata = saved_layout(tmp_path / "model.safetensors")
    assert keys == RECORD["hf_saved_keys"]
    assert metadata == RECORD["hf_metadata"] == {"format": "pt"}
    assert "lm_head.weight" not in keys


def test_save_pretrained_config_is_strictly_typed(tmp_path):
    model = GPT2LMHeadModel.from_pretrained(CHECKPOINT)
    model.config.n_embd, model.config.layer_norm_epsilon = 32.0, 1  # wrong types must not leak into the file
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    hf_config = json.loads((CHECKPOINT / "config.json").read_text())
    assert type(config["n_embd"]) is int and type(config["layer_norm_epsilon"]) is float
    assert config["n_inner"] is None
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["dtype"] == "float32"
    for key, value in config.items():
        if key in hf_config and key not in ("dtype", "n_embd", "layer_norm_epsilon"):
            assert value == hf_config[key] and type(value) is type(hf_config[key]), key


def test_saved_float32_model_is_float32_and_reloads_exactly(tmp_path):
    model = GPT2LMHeadModel.from_pretrained(CHECKPOINT).eval()
    model.save_pretrained(tmp_path)
    keys, _ = saved_layout(tmp_path / "model.safetensors")
    assert {dtype for _, dtype in keys.values()} == {"F32"}
    again = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    np.testing.assert_array_equal(again(INPUT_IDS).numpy(), model(INPUT_IDS).numpy())


def test_dtype_none_keeps_the_files_dtype():
    model = GPT2LMHeadModel.from_pretrained(CHECKPOINT, dtype=None)
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float64)}


def test_legacy_prefixless_keys_with_attention_bias_buffers_load(tmp_path):
    """The original hub `gpt2` form: bare `h.0…`/`wte.weight` keys plus the old causal-mask buffers."""
    state = {key.removeprefix("transformer."): value for key, value in read_weights(CHECKPOINT).items()}
    for layer in range(RECORD["config"]["n_layer"]):
        state[f"h.{layer}.attn.bias"] = np.tril(np.ones((32, 32)))[None, None]
        state[f"h.{layer}.attn.masked_bias"] = np.array(-1e4)
    write_checkpoint(tmp_path, state)
    assert relative_error(logits_of(tmp_path), HF_LOGITS) <= 1e-10


def test_legacy_gamma_beta_names_load(tmp_path):
    state = read_weights(CHECKPOINT)
    state["transformer.ln_f.gamma"] = state.pop("transformer.ln_f.weight")
    state["transformer.ln_f.beta"] = state.pop("transformer.ln_f.bias")
    write_checkpoint(tmp_path, state)
    assert relative_error(logits_of(tmp_path), HF_LOGITS) <= 1e-10


def test_sharded_checkpoint_loads(tmp_path):
    state = read_weights(CHECKPOINT)
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[:10], "model-00002-of-00002.safetensors": names[10:]}
    for shard, keys in shards.items():
        safetensors.numpy.save_file({key: state[key] for key in keys}, tmp_path / shard, metadata={"format": "pt"})
    weight_map = {key: shard for shard, keys in shards.items() for key in keys}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    shutil.copy(CHECKPOINT / "config.json", tmp_path)
    assert relative_error(logits_of(tmp_path), HF_LOGITS) <= 1e-10
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors"):
        logits_of(tmp_path)


def test_trunk_loads_a_head_checkpoint_and_head_loads_a_trunk_checkpoint(tmp_path):
    head = GPT2LMHeadModel.from_pretrained(CHECKPOINT, dtype=tt.float64).eval()
    trunk = GPT2Model.from_pretrained(CHECKPOINT, dtype=tt.float64).eval()
    np.testing.assert_array_equal(trunk(INPUT_IDS).numpy(), head.transformer(INPUT_IDS).numpy())
    trunk.save_pretrained(tmp_path)
    keys, _ = saved_layout(tmp_path / "model.safetensors")
    assert set(keys) == {key.removeprefix("transformer.") for key in RECORD["hf_saved_keys"]}
    assert relative_error(logits_of(tmp_path), HF_LOGITS) <= 1e-10


def test_tied_head_in_the_file_stays_tied_when_equal_and_unties_when_different(tmp_path):
    state = read_weights(CHECKPOINT)
    state["lm_head.weight"] = state["transformer.wte.weight"]
    model = GPT2LMHeadModel.from_pretrained(write_checkpoint(tmp_path / "equal", state))
    assert model.lm_head.weight is model.transformer.wte.weight
    state["lm_head.weight"] = state["transformer.wte.weight"] * 2
    model = GPT2LMHeadModel.from_pretrained(write_checkpoint(tmp_path / "different", state), dtype=tt.float64)
    assert model.lm_head.weight is not model.transformer.wte.weight
    np.testing.assert_array_equal(model.lm_head.weight.numpy(), state["lm_head.weight"])
    model.save_pretrained(tmp_path / "saved")
    assert "lm_head.weight" in saved_layout(tmp_path / "saved" / "model.safetensors")[0]


def test_untied_config_needs_and_saves_the_head(tmp_path):
    config = {**json.loads((CHECKPOINT / "config.json").read_text()), "tie_word_embeddings": False}
    with pytest.raises(CheckpointError, match="missing keys.*lm_head.weight"):
        GPT2LMHeadModel.from_pretrained(write_checkpoint(tmp_path / "no_head", read_weights(CHECKPOINT), config))
    state = {**read_weights(CHECKPOINT), "lm_head.weight": read_weights(CHECKPOINT)["transformer.wte.weight"]}
    model = GPT2LMHeadModel.from_pretrained(write_checkpoint(tmp_path / "head", state, config))
    model.save_pretrained(tmp_path / "saved")
    assert "lm_head.weight" in saved_layout(tmp_path / "saved" / "model.safetensors")[0]


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_a_missing_file_is_named(tmp_path, missing):
    shutil.copytree(CHECKPOINT, tmp_path, dirs_exist_ok=True)
    (tmp_path / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        GPT2LMHeadModel.from_pretrained(tmp_path)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = read_weights(CHECKPOINT)
    del state["transformer.h.1.mlp.c_fc.bias"]
    state["transformer.h.0.attn.q_norm.weight"] = np.ones(8)
    with pytest.raises(CheckpointError, match=r"missing keys \['transformer.h.1.mlp.c_fc.bias'\].*"
                                       r"unexpected keys \['transformer.h.0.attn.q_norm.weight'\]"):
        GPT2LMHeadModel.from_pretrained(write_checkpoint(tmp_path, state))


def test_a_wrong_shape_is_named(tmp_path):
    state = read_weights(CHECKPOINT)
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:8]
    with pytest.raises(CheckpointError, match=r"wrong_shape_is_named0: error.*\n.*transformer.wpe.weight"):
        GPT2LMHeadModel.from_pretrained(write_checkpoint(tmp_path, state))


@pytest.mark.parametrize("flag, value", [("add_cross_attention", True), ("activation_function", "gelu_10"),
                                         ("model_type", "llama")])
def test_an_unsupported_config_value_is_named(tmp_path, flag, value):
    config = {**json.loads((CHECKPOINT / "config.json").read_text()), flag: value}
    with pytest.raises(ValueError, match=flag):
        GPT2LMHeadModel.from_pretrained(write_checkpoint(tmp_path, read_weights(CHECKPOINT), config))


def test_every_class_name_in_models_is_defined_once():
    """One class per name across models/ (issue 17): `from models.x import Name` never depends on which x."""
    where = defaultdict(list)
    for path in sorted((Path(__file__).parent.parent / "models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(path.name)
    assert {name: files for name, files in where.items() if len(files) > 1} == {}


def test_classification_reexports_berts_classifier_rather_than_defining_another():
    assert classification.BertForSequenceClassification is bert.BertForSequenceClassification
    assert classification.CLASSIFIERS["bert"][1] is bert.BertForSequenceClassification
