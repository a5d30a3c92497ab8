"""Every file the library reads, corrupted by Hypothesis: the outcome is the loaded object or the library's own error.

Each family below is a directory written by the code itself (a `save_pretrained` directory of each Hugging Face
model, a sharded one, a training checkpoint, each tokenizer's files). An example copies it, applies one mutation
(a byte flip, a truncation, or an edit of a JSON file: a value of another type, a string bool, a fraction for an
integer, a list for an object, a key dropped or added, a path entry leading out), and loads it. The outcome must be
either what was saved or an error of `tinytensor.io` (FileFormatError and its subclasses, or FileNotFoundError)
naming a path inside the directory; never another exception type, never a read of a file outside the directory
(watched with an audit hook), never a hang (a per-example deadline).

"What was saved" is as strict as each format allows: a checkpoint's tensors are checked by SHA-256, so a loaded
checkpoint holds exactly the saved tensors; safetensors and config.json carry no checksum, so a flipped weight byte
or a changed learning-rate digit loads a different model of the same architecture (same keys and shapes), which is
all a reader can promise. Edits whose result is known to be invalid (a string bool, a fraction for an integer in a
typed config, a non-object document, a path out of the directory) must raise.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import scaled_examples

import tinytensor as tt
from models.albert import AlbertConfig, AlbertForPreTraining
from models.bert import BertConfig, BertForPreTraining
from models.deberta import DebertaConfig, DebertaForMaskedLM
from models.gpt2 import GPT2Config, GPT2LMHeadModel
from models.llama import LlamaConfig, LlamaForCausalLM
from models.tokenizers import ByteLevelBPETokenizer, CharTokenizer, WordPieceTokenizer
from tinytensor import io
from tinytensor.optim import AdamW

TEXT = "the quick brown fox jumps over the lazy dog; the dog sleeps. [MASK] fox!"
corruption_settings = settings(scaled_examples(0.8), deadline=timedelta(seconds=30))  # 20 examples a family


# ---- reads outside the directory --------------------------------------------------------------------------------
_opened: list[str] | None = None


def _record_opens(event: str, args: tuple) -> None:
    """Audit hook: remember every path opened while `_opened` is a list (Python's open and os.open)."""
    if _opened is not None and event == "open" and isinstance(args[0], (str, bytes, Path)):
        _opened.append(str(Path(args[0].decode() if isinstance(args[0], bytes) else args[0]).resolve()))


sys.addaudithook(_record_opens)  # hooks cannot be removed; this one does nothing outside `opened_paths`


def load_watching_opens(load: Callable[[Path], Any], directory: Path) -> tuple[Any, list[str]]:
    """(load(directory) or the exception it raised, every path it opened)."""
    global _opened
    _opened = []
    try:
        return load(directory), _opened
    except Exception as error:  # noqa: BLE001 - the test judges every exception type
        return error, _opened
    finally:
        _opened = None


# ---- the families of files --------------------------------------------------------------------------------------
@dataclass
class Family:
    """A directory written by the library, how to load it, and what a successful load must equal."""

    directory: Path
    load: Callable[[Path], Any]
    same_as_saved: Callable[[Any], bool]
    strictly_typed: tuple[str, ...] = ()  # JSON files whose every value has a declared type
    path_entries: tuple[tuple[str, tuple], ...] = ()  # (file, location) of file names read from inside files


def state_of(model) -> dict[str, np.ndarray]:
    return {name: tensor.numpy() for name, tensor in model.state_dict().items()}


def same_architecture(saved: dict[str, np.ndarray]) -> Callable[[Any], bool]:
    """A loaded model fits: the same parameter names and shapes (values may differ: no checksum in the format)."""
    return lambda model: {name: array.shape for name, array in state_of(model).items()} == \
        {name: array.shape for name, array in saved.items()}


def hf_family(root: Path, name: str, model) -> Family:
    directory = root / name
    model.save_pretrained(directory)
    return Family(directory, type(model).from_pretrained, same_architecture(state_of(model)), ("config.json",))


def sharded_gpt2_family(root: Path) -> Family:
    """GPT-2 saved, then split into two shards and an index, as transformers writes large models."""
    family = hf_family(root, "gpt2_sharded", tiny_gpt2())
    weights = family.directory / "model.safetensors"
    arrays = safetensors.numpy.load_file(weights)
    weights.unlink()
    names = sorted(arrays)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, shard_names in shards.items():
        safetensors.numpy.save_file({n: arrays[n] for n in shard_names}, family.directory / shard,
                                    metadata={"format": "pt"})
    weight_map = {n: shard for shard, shard_names in shards.items() for n in shard_names}
    (family.directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    entries = tuple(("model.safetensors.index.json", ("weight_map", n)) for n in names[:2])
    return Family(family.directory, family.load, family.same_as_saved, ("config.json",), entries)


def tiny_gpt2() -> GPT2LMHeadModel:
    return GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=16, n_embd=8, n_layer=2, n_head=2))


def checkpoint_family(root: Path) -> Family:
    """A training checkpoint after one AdamW step, with a config, RNG state and extras in its JSON record."""
    model = tiny_gpt2()
    optimizer = AdamW(model.parameters(), lr=1e-3)
    logits = model(np.array([[1, 2, 3]]))
    model.loss(logits, np.array([[1, 2, 3]])).backward()
    optimizer.step()
    saved = state_of(model)
    directory = io.save_checkpoint(root / "checkpoint", model.state_dict(), optimizer.state_dict(),
                                   rng_state=tt.get_rng_state(), config={"n_layer": 2, "bias": True}, step=1,
                                   extra={"tokens_seen": 3})

    def same_as_saved(checkpoint: io.Checkpoint) -> bool:
        return checkpoint.model.keys() == saved.keys() and \
            all(np.array_equal(checkpoint.model[name].numpy(), saved[name]) for name in saved)

    return Family(directory, io.load_checkpoint, same_as_saved,
                  path_entries=(("checkpoint.json", ("tensors_file",)),))


def torch_save_family(root: Path) -> Family:
    """A nanoGPT-style checkpoint written by tt.save: tensors in safetensors, its structure as JSON metadata. A
    flipped byte may change a value or a key undetectably (no checksum), so success only means a dict came back."""
    model = tiny_gpt2()
    optimizer = AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    (root / "torch_save").mkdir()
    tt.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": 3,
             "config": {"dataset": "shakespeare_char", "best": float("inf"), "sizes": (1, 2)}},
            root / "torch_save" / "ckpt.pt")
    return Family(root / "torch_save", lambda directory: tt.load(directory / "ckpt.pt"),
                  lambda loaded: isinstance(loaded, dict))


def bpe_family(root: Path) -> Family:
    tokenizer = ByteLevelBPETokenizer.train(TEXT * 3, vocab_size=280, min_frequency=1)
    tokenizer.save_pretrained(root / "bpe")
    return Family(root / "bpe", ByteLevelBPETokenizer.from_pretrained, usable_tokenizer)


def wordpiece_family(root: Path) -> Family:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(TEXT.split()) - {"[MASK]"}), "##s"]
    WordPieceTokenizer(vocab, lowercase=False).save_pretrained(root / "wordpiece")
    return Family(root / "wordpiece", WordPieceTokenizer.from_pretrained, usable_tokenizer,
                  ("tokenizer_config.json",))


def char_family(root: Path) -> Family:
    (root / "char").mkdir()
    CharTokenizer.from_text(TEXT).save(root / "char" / "tokenizer.json")
    return Family(root / "char", lambda directory: CharTokenizer.load(directory / "tokenizer.json"),
                  usable_tokenizer)


def usable_tokenizer(tokenizer) -> bool:
    """A loaded tokenizer works: it encodes and decodes (a byte flip may rename a token; that is not detectable)."""
    try:
        return isinstance(tokenizer.decode(tokenizer.encode("the")), str)
    except ValueError:  # a character or token the changed vocabulary lacks: the tokenizer's documented error
        return True


BUILDERS = {
    "gpt2": lambda root: hf_family(root, "gpt2", tiny_gpt2()),
    "gpt2_sharded": sharded_gpt2_family,
    "llama": lambda root: hf_family(root, "llama", LlamaForCausalLM(LlamaConfig(
        vocab_size=40, hidden_size=8, intermediate_size=12, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=16))),
    "bert": lambda root: hf_family(root, "bert", BertForPreTraining(BertConfig(
        vocab_size=40, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
        max_position_embeddings=16))),
    "albert": lambda root: hf_family(root, "albert", AlbertForPreTraining(AlbertConfig(
        vocab_size=40, embedding_size=4, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=12, max_position_embeddings=16))),
    "deberta": lambda root: hf_family(root, "deberta", DebertaForMaskedLM(DebertaConfig(
        vocab_size=40, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
        max_position_embeddings=16, relative_attention=True, max_relative_positions=4, pos_att_type=["c2p", "p2c"],
        position_biased_input=False))),
    "checkpoint": checkpoint_family,
    "torch_save": torch_save_family,
    "bpe": bpe_family,
    "wordpiece": wordpiece_family,
    "char": char_family,
}


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> dict[str, Family]:
    root = tmp_path_factory.mktemp("saved")
    return {name: build(root) for name, build in BUILDERS.items()}


# ---- mutations ----------------------------------------------------------------------------------------------------
OTHER_VALUES = ["two", "false", "", 1.9, -0.5, 3, 0, True, None, [], [1, 2], {}, {"a": 1}, "../x"]
ESCAPES = ["../outside.safetensors", "sub/../../outside.safetensors", "../../../../../../etc/passwd",
           "{outside}", "link-out.safetensors"]


def locations(document: Any, at: tuple = ()) -> list[tuple]:
    """Every place in a parsed JSON document (the root included), as key/index paths."""
    inside = document.items() if isinstance(document, dict) else enumerate(document) \
        if isinstance(document, list) else ()
    return [at, *(place for key, value in inside for place in locations(value, (*at, key)))]


def value_at(document: Any, place: tuple) -> Any:
    for key in place:
        document = document[key]
    return document


def replaced(document: Any, place: tuple, new: Any) -> Any:
    """A copy of the document with the value at `place` replaced (`...` deletes it)."""
    if not place:
        return new
    document = json.loads(json.dumps(document))
    parent = value_at(document, place[:-1])
    if new is ...:
        del parent[place[-1]]
    else:
        parent[place[-1]] = new
    return document


@st.composite
def json_edits(draw, document: Any, name: str, family: Family):
    """(edited document, the error type it must raise or None when loading may succeed, label)."""
    places = locations(document)
    ints = [p for p in places if isinstance(value_at(document, p), int) and not isinstance(value_at(document, p), bool)]
    bools = [p for p in places if isinstance(value_at(document, p), bool)]
    objects = [p for p in places if isinstance(value_at(document, p), dict) and value_at(document, p)]
    strict = name in family.strictly_typed
    edits = ["retype", "drop_key", "extra_key", "list_for_object"]
    edits += ["string_bool"] * bool(bools) + ["fraction_for_int"] * bool(ints)
    edit = draw(st.sampled_from(edits), label="edit")
    if edit == "retype":
        place = draw(st.sampled_from(places), label="place")
        return replaced(document, place, draw(st.sampled_from(OTHER_VALUES), label="value")), None, edit
    if edit == "string_bool":
        place = draw(st.sampled_from(bools), label="place")
        new = draw(st.sampled_from(["false", "true", "0", "False"]), label="value")
        return replaced(document, place, new), io.ConfigError if strict else None, edit
    if edit == "fraction_for_int":
        place = draw(st.sampled_from(ints), label="place")
        return replaced(document, place, value_at(document, place) + 0.5), io.ConfigError if strict else None, edit
    if edit == "list_for_object":
        place = draw(st.sampled_from(objects), label="place")
        must_fail = io.FileFormatError if not place else None  # a document that is not an object never loads
        return replaced(document, place, list(value_at(document, place).values())), must_fail, edit
    place = draw(st.sampled_from(objects), label="place")
    if edit == "drop_key":
        key = draw(st.sampled_from(sorted(value_at(document, place))), label="key")
        return replaced(document, (*place, key), ...), None, edit
    return replaced(document, (*place, "added_by_test"), draw(st.sampled_from(OTHER_VALUES))), None, edit


@st.composite
def mutations(draw, family: Family):
    """(file name, new bytes or None to keep, the error type the result must raise or None, label)."""
    names = sorted(path.name for path in family.directory.iterdir())
    kinds = ["flip", "truncate"] + ["json"] * any(n.endswith(".json") for n in names)
    kinds += ["path_entry"] * bool(family.path_entries)
    kind = draw(st.sampled_from(kinds), label="kind")
    if kind == "path_entry":
        name, place = draw(st.sampled_from(family.path_entries), label="entry")
        document = json.loads((family.directory / name).read_text())
        escape = draw(st.sampled_from(ESCAPES), label="escape")
        new = json.dumps(replaced(document, place, escape)).encode()
        return name, new, io.UnsafePathError, f"path_entry {escape}"
    if kind == "json":
        name = draw(st.sampled_from([n for n in names if n.endswith(".json")]), label="file")
        edited, must_fail, label = draw(json_edits(json.loads((family.directory / name).read_text()), name, family))
        return name, json.dumps(edited, indent=2).encode(), must_fail, label
    name = draw(st.sampled_from(names), label="file")
    data = (family.directory / name).read_bytes()
    if kind == "truncate":
        return name, data[:draw(st.integers(0, len(data) - 1), label="length")], None, kind
    position = draw(st.integers(0, len(data) - 1), label="position")
    flipped = bytearray(data)
    flipped[position] ^= draw(st.integers(1, 255), label="xor")
    return name, bytes(flipped), None, kind


def mutated_copy(family: Family, base: Path, name: str, new: bytes) -> tuple[Path, set[str]]:
    """The family's directory copied under `base` with `name` rewritten; an outside file and a symlink to it are
    planted beside and inside it. Returns the directory and the outside paths that must never be opened."""
    directory = base / "run" / family.directory.name
    shutil.copytree(family.directory, directory)
    outside = base / "run" / "outside.safetensors"
    shutil.copyfile(next(family.directory.glob("*.safetensors"), family.directory / name), outside)
    (directory / "link-out.safetensors").symlink_to(outside)
    (directory / name).write_bytes(new.replace(b"{outside}", str(outside).encode()))
    return directory, {str(outside.resolve()), "/etc/passwd"}


def check_outcome(family: Family, directory: Path, outcome: Any, must_fail: type | None, label: str) -> None:
    if isinstance(outcome, Exception):
        assert isinstance(outcome, (io.FileFormatError, FileNotFoundError)), \
            f"{label}: {type(outcome).__name__}: {outcome}"
        named = outcome.path if isinstance(outcome, io.FileFormatError) else Path(str(outcome).split(" ")[0])
        assert named.resolve().is_relative_to(directory.resolve()), f"{label}: {outcome}"
        assert str(named) in str(outcome)
        if must_fail is not None:
            assert isinstance(outcome, must_fail), f"{label}: {type(outcome).__name__}: {outcome}"
    else:
        assert must_fail is None, f"{label}: loaded, but must raise {must_fail.__name__}"
        assert family.same_as_saved(outcome), label


# ---- the property -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(BUILDERS))
@corruption_settings
@given(data=st.data())
def test_a_corrupted_file_loads_as_saved_or_raises_a_library_error_naming_it(families, name, data):
    family = families[name]
    file, new, must_fail, label = data.draw(mutations(family), label="mutation")
    with tempfile.TemporaryDirectory() as base:
        directory, forbidden = mutated_copy(family, Path(base), file, new)
        outcome, opened = load_watching_opens(family.load, directory)
        assert not forbidden & set(opened), f"{label}: read {forbidden & set(opened)}"
        check_outcome(family, directory, outcome, must_fail, f"{file}: {label}")


@pytest.mark.parametrize("name", list(BUILDERS))
def test_an_untouched_directory_loads_as_saved(families, name):
    family = families[name]
    assert family.same_as_saved(family.load(family.directory))
