"""Reading files: typed JSON fields, errors that name the file, paths that stay inside their directory.

One test per example of issue 14 (each reported a parser's own message, a wrong value loaded silently, or a read
outside the directory), then the readers of `tinytensor.io` themselves.
"""
from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import safetensors.numpy

from models.gpt2 import GPT2Config, GPT2LMHeadModel
from models.tokenizers import ByteLevelBPETokenizer, CharTokenizer, WordPieceTokenizer
from tinytensor import io

WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]


@pytest.fixture
def gpt2_dir(tmp_path):
    """A tiny GPT-2 written by save_pretrained."""
    GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=2, n_head=2)).save_pretrained(tmp_path)
    return tmp_path


def edit_config(directory, **changes):
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return path


def split_into_shards(directory, weight_map_of=lambda name, shard: shard):
    """Replace model.safetensors by two shards and an index whose weight_map says `weight_map_of(name, shard)`."""
    arrays = safetensors.numpy.load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    names = sorted(arrays)
    weight_map = {}
    for number, part in enumerate((names[::2], names[1::2]), start=1):
        shard = f"model-0000{number}-of-00002.safetensors"
        safetensors.numpy.save_file({name: arrays[name] for name in part}, directory / shard)
        weight_map.update({name: weight_map_of(name, shard) for name in part})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


# ---- typed configs (issue 14, first list) -------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["tie_word_embeddings", "scale_attn_weights"])
def test_a_string_bool_in_config_json_is_an_error_naming_file_key_value_and_type(gpt2_dir, key):
    path = edit_config(gpt2_dir, **{key: "false"})
    with pytest.raises(io.ConfigError, match=rf'config.json: "{key}" is "false" \(a string\); expected true or '
                                             'false') as error:
        GPT2LMHeadModel.from_pretrained(gpt2_dir)
    assert error.value.path == path


@pytest.mark.parametrize("value, kind", [(1.9, "a number"), ("two", "a string"), (True, "true"), (None, "null")])
def test_an_int_field_takes_only_integral_numbers(gpt2_dir, value, kind):
    edit_config(gpt2_dir, n_layer=value)
    with pytest.raises(io.ConfigError, match=rf'config.json: "n_layer" is {json.dumps(value)} \({kind}\); '
                                             'expected an integer'):
        GPT2LMHeadModel.from_pretrained(gpt2_dir)


def test_an_integral_float_for_an_int_field_loads_as_that_int(gpt2_dir):
    edit_config(gpt2_dir, n_layer=2.0)
    assert GPT2LMHeadModel.from_pretrained(gpt2_dir).config.n_layer == 2


@pytest.mark.parametrize("document, kind", [([1, 2], "an array"), ("gpt2", "a string"), (None, "null")])
def test_a_config_that_is_not_a_json_object_is_an_error_naming_the_file(gpt2_dir, document, kind):
    (gpt2_dir / "config.json").write_text(json.dumps(document))
    with pytest.raises(io.ConfigError, match=f"config.json: holds {kind}; expected a JSON object"):
        GPT2LMHeadModel.from_pretrained(gpt2_dir)


def test_a_config_value_the_model_rejects_is_a_config_error_naming_the_file(gpt2_dir):
    edit_config(gpt2_dir, n_head=3)
    with pytest.raises(io.ConfigError, match="config.json: GPT2Config: n_embd 8 must be a multiple of n_head 3"):
        GPT2LMHeadModel.from_pretrained(gpt2_dir)


def test_a_string_do_lower_case_in_tokenizer_config_is_an_error(tmp_path):
    WordPieceTokenizer(WORDPIECE_VOCAB, lowercase=False).save_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": "false"}')
    with pytest.raises(io.ConfigError, match='tokenizer_config.json: "do_lower_case" is "false"'):
        WordPieceTokenizer.from_pretrained(tmp_path)


# ---- files that do not parse (issue 14, second list) --------------------------------------------------------------
def saved_tokenizer_files(tmp_path):
    """{file name: directory} for every JSON file a tokenizer or model writes."""
    ByteLevelBPETokenizer.train("hello world " * 5, vocab_size=260).save_pretrained(tmp_path / "bpe")
    WordPieceTokenizer(WORDPIECE_VOCAB).save_pretrained(tmp_path / "wordpiece")
    (tmp_path / "char").mkdir()
    CharTokenizer.from_text("hello").save(tmp_path / "char" / "tokenizer.json")


LOADERS = {
    "config.json": lambda d: GPT2LMHeadModel.from_pretrained(d / "gpt2"),
    "model.safetensors.index.json": lambda d: GPT2LMHeadModel.from_pretrained(d / "gpt2"),
    "vocab.json": lambda d: ByteLevelBPETokenizer.from_pretrained(d / "bpe"),
    "tokenizer_config.json": lambda d: WordPieceTokenizer.from_pretrained(d / "wordpiece"),
    "tokenizer.json": lambda d: CharTokenizer.load(d / "char" / "tokenizer.json"),
}
FOLDERS = {"config.json": "gpt2", "model.safetensors.index.json": "gpt2", "vocab.json": "bpe",
           "tokenizer_config.json": "wordpiece", "tokenizer.json": "char"}


@pytest.mark.parametrize("name", list(LOADERS))
def test_json_that_does_not_parse_is_an_error_naming_file_line_and_column(tmp_path, name):
    GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2)).save_pretrained(
        tmp_path / "gpt2")
    split_into_shards(tmp_path / "gpt2")
    saved_tokenizer_files(tmp_path)
    path = tmp_path / FOLDERS[name] / name
    path.write_text('{\n  "a": 1,\n  "b": ')
    with pytest.raises(io.FileFormatError, match=f"{name}: not valid JSON: Expecting value at line 3, column 8") \
            as error:
        LOADERS[name](tmp_path)
    assert error.value.path == path


def test_vocab_txt_that_is_not_utf8_is_an_error_naming_the_byte_offset(tmp_path):
    valid = ("\n".join(WORDPIECE_VOCAB) + "\ncaf").encode()
    (tmp_path / "vocab.txt").write_bytes(valid + b"\xe9\n")
    with pytest.raises(io.FileFormatError, match=rf"vocab.txt: not UTF-8 text: byte {len(valid)} is 0xe9"):
        WordPieceTokenizer.from_vocab(tmp_path / "vocab.txt")


def test_read_text_serves_tsv_data_and_names_the_byte_offset_of_bad_utf8(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"hello\tbonjour\nbad\t\xff\n")
    with pytest.raises(io.FileFormatError, match=r"pairs.tsv: not UTF-8 text: byte 18 is 0xff"):
        io.read_text(path)
    path.write_text("hello\tbonjour\n", encoding="utf-8")
    assert io.read_text(path).splitlines() == ["hello\tbonjour"]


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, pickle.dumps({"w": [1.0, 2.0]}), b"not a tensor file"])
def test_an_empty_truncated_or_foreign_weights_file_is_a_checkpoint_error_naming_it(gpt2_dir, content):
    (gpt2_dir / "model.safetensors").write_bytes(content)
    with pytest.raises(io.CheckpointError, match="model.safetensors: not a valid safetensors file"):
        GPT2LMHeadModel.from_pretrained(gpt2_dir)


def test_a_truncated_weights_file_is_a_checkpoint_error(gpt2_dir):
    path = gpt2_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(io.CheckpointError, match="model.safetensors: not a valid safetensors file"):
        GPT2LMHeadModel.from_pretrained(gpt2_dir, dtype=None)


def test_a_weights_file_with_no_tensors_is_an_error_not_a_stop_iteration(gpt2_dir):
    safetensors.numpy.save_file({}, gpt2_dir / "model.safetensors")
    with pytest.raises(io.CheckpointError, match="model.safetensors: holds no tensors"):
        GPT2LMHeadModel.from_pretrained(gpt2_dir, dtype=None)


def test_an_index_without_weight_map_is_an_error_not_a_key_error(gpt2_dir):
    split_into_shards(gpt2_dir)
    (gpt2_dir / "model.safetensors.index.json").write_text('{"metadata": {}}')
    with pytest.raises(io.CheckpointError, match='model.safetensors.index.json: lacks the key "weight_map"'):
        GPT2LMHeadModel.from_pretrained(gpt2_dir)


@pytest.mark.parametrize("key", ["sha256", "tensors_file", "step", "tensors"])
def test_a_checkpoint_record_missing_a_key_is_a_checkpoint_error_naming_it(tmp_path, key):
    io.save_checkpoint(tmp_path, {"w": np.ones(2)})
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    del record[key]
    (tmp_path / "checkpoint.json").write_text(json.dumps(record))
    with pytest.raises(io.CheckpointError, match=f'checkpoint.json: lacks the key "{key}"'):
        io.load_checkpoint(tmp_path)


def test_a_checkpoint_record_value_of_the_wrong_type_is_named(tmp_path):
    io.save_checkpoint(tmp_path, {"w": np.ones(2)}, step=3)
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    (tmp_path / "checkpoint.json").write_text(json.dumps({**record, "step": "3"}))
    with pytest.raises(io.CheckpointError, match=r'checkpoint.json: "step" is "3" \(a string\); expected an integer'):
        io.load_checkpoint(tmp_path)


# ---- paths that leave their directory (issue 14, third list) ------------------------------------------------------
def point_tensors_file(directory, entry):
    record = json.loads((directory / "checkpoint.json").read_text())
    (directory / "checkpoint.json").write_text(json.dumps({**record, "tensors_file": entry}))


def test_a_checkpoint_naming_etc_passwd_is_refused_without_reading_it(tmp_path):
    io.save_checkpoint(tmp_path / "run", {"w": np.ones(2)})
    point_tensors_file(tmp_path / "run", "../../../../../../../../etc/passwd")
    with pytest.raises(io.UnsafePathError, match=r'checkpoint.json: "tensors_file" \'\.\./.*etc/passwd\' leads out of'):
        io.load_checkpoint(tmp_path / "run")


def test_a_checkpoint_naming_another_runs_tensors_by_absolute_path_is_refused(tmp_path):
    io.save_checkpoint(tmp_path / "other", {"w": np.ones(2)})
    io.save_checkpoint(tmp_path / "run", {"w": np.ones(2)})
    other = next((tmp_path / "other").glob("checkpoint-*.safetensors"))
    point_tensors_file(tmp_path / "run", str(other))
    with pytest.raises(io.UnsafePathError, match='"tensors_file" names the absolute path'):
        io.load_checkpoint(tmp_path / "run")


def test_a_checkpoint_tensors_file_that_is_a_symlink_out_is_refused(tmp_path):
    io.save_checkpoint(tmp_path / "other", {"w": np.ones(2)})
    io.save_checkpoint(tmp_path / "run", {"w": np.ones(2)})
    other = next((tmp_path / "other").glob("checkpoint-*.safetensors"))
    (tmp_path / "run" / "link.safetensors").symlink_to(other)
    point_tensors_file(tmp_path / "run", "link.safetensors")
    with pytest.raises(io.UnsafePathError, match="'link.safetensors' leads out of"):
        io.load_checkpoint(tmp_path / "run")


@pytest.mark.parametrize("escape", ["absolute", "../", "symlink"])
def test_a_weight_map_entry_outside_the_directory_is_refused(tmp_path, escape):
    model_dir = tmp_path / "model"
    GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2)).save_pretrained(model_dir)
    outside = tmp_path / "outside.safetensors"
    (model_dir / "model.safetensors").rename(outside)
    (model_dir / "model.safetensors").write_bytes(outside.read_bytes())
    entry = {"absolute": str(outside), "../": "../outside.safetensors", "symlink": "link.safetensors"}[escape]
    (model_dir / "link.safetensors").symlink_to(outside)
    split_into_shards(model_dir, lambda name, shard: entry if name.endswith("wte.weight") else shard)
    with pytest.raises(io.UnsafePathError, match="model.safetensors.index.json: weight_map entry"):
        GPT2LMHeadModel.from_pretrained(model_dir)


def test_shards_linking_into_a_hugging_face_cache_blobs_folder_load(tmp_path):
    """The hub cache keeps files in models--x/blobs/ and links them from models--x/snapshots/<revision>/."""
    repo = tmp_path / "models--tiny"
    snapshot = repo / "snapshots" / "abc123"
    model = GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2))
    model.save_pretrained(snapshot)
    split_into_shards(snapshot)
    (repo / "blobs").mkdir()
    for shard in snapshot.glob("model-*.safetensors"):
        shard.rename(repo / "blobs" / shard.name)
        shard.symlink_to(f"../../blobs/{shard.name}")
    loaded = GPT2LMHeadModel.from_pretrained(snapshot)
    assert np.array_equal(loaded.lm_head.weight.numpy(), model.lm_head.weight.numpy())


# ---- the readers ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, hint, expected", [
    (2, int, 2), (2.0, int, 2), (3, float, 3.0), (0.5, float, 0.5), (False, bool, False), ("a", str, "a"),
    (None, int | None, None), ([1, 2], int | list[int] | None, [1, 2]), (7, int | list[int] | None, 7),
    ({"a": 1}, dict, {"a": 1}), ({"a": [1]}, dict[str, list[int]], {"a": [1]}), ("x", list | str | None, "x"),
])
def test_check_type_accepts_values_of_the_annotated_type(value, hint, expected):
    checked = io.check_type(value, hint, "key")
    assert checked == expected and type(checked) is type(expected)


@pytest.mark.parametrize("value, hint, message", [
    (1.9, int, r'"key" is 1.9 \(a number\); expected an integer'),
    (True, int, r'"key" is true \(true\); expected an integer'),
    ("1", int, r'"key" is "1" \(a string\); expected an integer'),
    (math.inf, float, r'"key" is Infinity \(a number\); expected a finite number'),
    (math.nan, float, r'"key" is NaN \(a number\); expected a finite number'),
    (1, bool, r'"key" is 1 \(a number\); expected true or false'),
    ("false", bool, r'"key" is "false" \(a string\); expected true or false'),
    ([1], dict, r'"key" is \[1\] \(an array\); expected an object'),
    ({"a": 1}, int | list[int] | None, r'expected an integer, a list of integers or null'),
    ([1, "2"], list[int], r'"key\[1\]" is "2" \(a string\); expected an integer'),
])
def test_check_type_refuses_other_values_naming_key_value_and_type(value, hint, message):
    with pytest.raises(ValueError, match=message):
        io.check_type(value, hint, "key")


def test_a_missing_file_stays_file_not_found_and_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/config.json does not exist"):
        GPT2LMHeadModel.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere.txt does not exist"):
        io.read_text(tmp_path / "nowhere.txt")


def test_a_directory_where_a_file_should_be_is_a_file_format_error(tmp_path):
    (tmp_path / "vocab.json").mkdir()
    with pytest.raises(io.FileFormatError, match="vocab.json: not a regular file"):
        io.read_json(tmp_path / "vocab.json")


def test_file_errors_are_value_errors_with_the_path_and_pickle(tmp_path):
    error = io.ConfigError(tmp_path / "config.json", '"n_layer" is 1.9')
    assert isinstance(error, ValueError) and isinstance(error, io.FileFormatError)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) == f'{tmp_path}/config.json: "n_layer" is 1.9' and copy.path == error.path
    assert issubclass(io.CheckpointError, io.FileFormatError) and issubclass(io.UnsafePathError, io.FileFormatError)


def test_the_one_argument_form_of_checkpoint_error_still_works():
    error = io.CheckpointError("run/checkpoint.json: the tokenizer does not fit")
    assert str(error) == str(pickle.loads(pickle.dumps(error))) == "run/checkpoint.json: the tokenizer does not fit"
    assert error.path is None


@pytest.mark.parametrize("tokenizer, record, message", [
    (WordPieceTokenizer, {"type": "wordpiece", "vocab": WORDPIECE_VOCAB, "lowercase": "false"},
     r'"lowercase" is "false" \(a string\); expected true or false'),
    (WordPieceTokenizer, {"type": "wordpiece", "lowercase": True}, r'"vocab" is null \(null\); expected a list'),
    (ByteLevelBPETokenizer, {"type": "byte_level_bpe", "vocab": [], "merges": {}, "special_tokens": []},
     r'"merges" is \{\} \(an object\); expected a list'),
    (CharTokenizer, {"type": "char", "chars": "abc"}, r'"chars" is "abc" \(a string\); expected a list of strings'),
    (CharTokenizer, ["a", "b"], "expected a tokenizer of type 'char', got 'list'"),
])
def test_tokenizer_records_in_a_checkpoint_are_typed(tokenizer, record, message):
    with pytest.raises(ValueError, match=message):
        tokenizer.from_dict(record)


@pytest.mark.parametrize("lost", [("hidden_size", "intermediate_size"), ("vocab_size",)])
def test_a_config_that_lost_its_sizes_is_refused_before_a_default_sized_model_is_built(tmp_path, lost):
    """LLaMA's defaults (4096 wide, 11008 inner, 32 layers) would allocate 7 billion parameters (28 GB) before the
    tiny weights could disagree; the sizes are checked against the weights' axes first."""
    from models.llama import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=8, intermediate_size=12, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=16)
                     ).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in lost:
        del config[key]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(io.ConfigError, match=f"config.json: {lost[0]} \\d+ is not the length of any axis"):
        LlamaForCausalLM.from_pretrained(tmp_path)
