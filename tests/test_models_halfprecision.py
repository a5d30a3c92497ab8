"""bfloat16 and float16 weight files: reading them (bf16 by the 16-bit shift into float32), computing with them,
and writing them back as transformers writes them.

tests/fixtures/halfprecision/ (written by tests/fixtures/make_halfprecision_fixture.py) holds GPT-2 and LLaMA tiny
models that transformers saved in bf16 and fp16, and transformers' float32 logits computed with those rounded
weights. The script also checked that transformers reads our `save_pretrained(dtype=...)` back bit for bit.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given
from hypothesis import strategies as st

import tinytensor as tt
from models.gpt2 import GPT2LMHeadModel
from models.llama import LlamaForCausalLM
from tinytensor.io import (CheckpointError, bfloat16_to_float32, float32_to_bfloat16, read_safetensors,
                           weights_file_bytes)

FIXTURE = Path(__file__).parent / "fixtures" / "halfprecision"
REFERENCE = safetensors.numpy.load_file(FIXTURE / "reference.safetensors")
CASES = [(GPT2LMHeadModel, "gpt2_bfloat16"), (GPT2LMHeadModel, "gpt2_float16"),
         (LlamaForCausalLM, "llama_bfloat16"), (LlamaForCausalLM, "llama_float16")]


def logits(model) -> np.ndarray:
    with tt.no_grad():
        return model.eval()(REFERENCE["input_ids"]).numpy()


@pytest.mark.parametrize("model_class, name", CASES)
def test_half_precision_files_load_and_match_float32_logits_of_the_rounded_weights(model_class, name):
    model = model_class.from_pretrained(FIXTURE / name)
    assert all(p.dtype == tt.float32 for p in model.parameters())
    expected = REFERENCE[name]
    ours = logits(model)
    assert np.abs(ours - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("model_class, name", CASES)
def test_half_precision_files_load_into_float64_and_as_tt_bfloat16(model_class, name):
    wide = model_class.from_pretrained(FIXTURE / name, dtype=tt.float64)
    as_bf16 = model_class.from_pretrained(FIXTURE / name, dtype=tt.bfloat16)   # a storage name: computes in float32
    assert all(p.dtype == tt.float64 for p in wide.parameters())
    assert all(p.dtype == tt.float32 for p in as_bf16.parameters())
    expected = REFERENCE[name]
    assert np.abs(logits(wide) - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())


def test_dtype_none_keeps_float16_files_in_float16_and_reads_bfloat16_as_float32():
    assert {p.dtype for p in GPT2LMHeadModel.from_pretrained(FIXTURE / "gpt2_float16", dtype=None).parameters()} \
        == {tt.float16}
    assert {p.dtype for p in GPT2LMHeadModel.from_pretrained(FIXTURE / "gpt2_bfloat16", dtype=None).parameters()} \
        == {tt.float32}


@pytest.mark.parametrize("model_class, name", CASES)
@pytest.mark.parametrize("from_dtype", [tt.float32, tt.float64])
def test_save_pretrained_in_half_precision_writes_transformers_tensors_bit_for_bit(tmp_path, model_class, name,
                                                                                 from_dtype):
    storage = name.split("_")[1]
    model = model_class.from_pretrained(FIXTURE / name, dtype=from_dtype)
    model.save_pretrained(tmp_path, dtype=storage)
    theirs, ours = _raw_tensors(FIXTURE / name / "model.safetensors"), _raw_tensors(tmp_path / "model.safetensors")
    assert theirs.keys() == ours.keys()
    for key in theirs:
        assert theirs[key] == ours[key], key
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["dtype"] == storage == json.loads((FIXTURE / name / "config.json").read_text())["dtype"]
    assert json.loads(_header(tmp_path / "model.safetensors"))["__metadata__"] == {"format": "pt"}


def _header(path: Path) -> bytes:
    data = path.read_bytes()
    return data[8:8 + int.from_bytes(data[:8], "little")]


def _raw_tensors(path: Path) -> dict[str, tuple[str, list[int], bytes]]:
    """name → (safetensors dtype code, shape, the tensor's bytes)."""
    data = path.read_bytes()
    header = json.loads(_header(path))
    body = 8 + int.from_bytes(data[:8], "little")
    return {name: (info["dtype"], info["shape"], data[body + info["data_offsets"][0]:body + info["data_offsets"][1]])
            for name, info in header.items() if name != "__metadata__"}


def test_bfloat16_rounding_is_to_nearest_even_and_keeps_special_values():
    values = np.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -2.5, np.inf, -np.inf, np.nan,
                       3.4e38, 1e-40, 0.0, -0.0], dtype=np.float32)
    back = bfloat16_to_float32(float32_to_bfloat16(values))
    expected = [1.0, 1.0, 1 + 2 ** -6, 1 + 2 ** -7, -2.5, np.inf, -np.inf, np.nan, np.inf]
    np.testing.assert_array_equal(back[:9], np.array(expected, dtype=np.float32))
    assert back[9] != 0 and np.signbit(back[11]) and back[10] == 0


@given(st.lists(st.floats(width=32, max_value=2.0 ** 127, min_value=-(2.0 ** 127)), min_size=1, max_size=20))
def test_bfloat16_rounding_picks_a_nearest_bfloat16_and_round_trips_bfloat16_values(values):
    array = np.array(values, dtype=np.float32)
    rounded = bfloat16_to_float32(float32_to_bfloat16(array))
    truncated = bfloat16_to_float32(array.view(np.uint32) >> 16)            # the bf16 at or below |x|
    step = np.abs(bfloat16_to_float32((truncated.view(np.uint32) >> 16) + 1) - truncated)
    assert np.all(np.abs(rounded.astype(np.float64) - array) <= step.astype(np.float64) / 2)
    np.testing.assert_array_equal(bfloat16_to_float32(float32_to_bfloat16(rounded)), rounded)


def test_weights_files_round_trip_every_dtype_and_refuse_unknown_ones(tmp_path):
    arrays = {"f64": np.arange(3, dtype=np.float64), "f32": np.ones((2, 2), np.float32),
              "i64": np.arange(4, dtype=np.int64), "half": np.full(2, 0.5, np.float16)}
    path = tmp_path / "w.safetensors"
    path.write_bytes(weights_file_bytes(arrays))
    loaded = read_safetensors(path)
    assert {k: (v.dtype, v.tolist()) for k, v in loaded.items()} == \
        {k: (v.dtype, v.tolist()) for k, v in arrays.items()}
    assert safetensors.numpy.load_file(path)["f32"].tolist() == [[1, 1], [1, 1]]  # the reference reader agrees
    path.write_bytes(weights_file_bytes(arrays, dtype="bfloat16"))
    assert read_safetensors(path)["i64"].dtype == np.int64 and read_safetensors(path)["f64"].dtype == np.float32
    with pytest.raises(ValueError, match="int8"):
        weights_file_bytes(arrays, dtype="int8")


@pytest.mark.parametrize("cut", [0, 7, 20, -3])
def test_truncated_weights_files_raise_checkpoint_error_naming_the_file(tmp_path, cut):
    data = (FIXTURE / "gpt2_bfloat16" / "model.safetensors").read_bytes()
    path = tmp_path / "model.safetensors"
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        read_safetensors(path)
