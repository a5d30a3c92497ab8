"""Tests for the character-level tokenizer in models.tokenizers."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.tokenizers import CharTokenizer

VOCAB = "\n !',-.:;?ABCabcxyz\u00e9\u4e2d"


@given(st.text(alphabet=VOCAB))
def test_decode_inverts_encode_for_any_text_over_the_vocabulary(text):
    tokenizer = CharTokenizer(VOCAB)
    assert tokenizer.decode(tokenizer.encode(text)) == text


@given(st.text(min_size=1))
def test_from_text_vocabulary_is_the_sorted_unique_characters(text):
    tokenizer = CharTokenizer.from_text(text)
    assert tokenizer.chars == sorted(set(text))
    assert tokenizer.vocab_size == len(tokenizer) == len(set(text))


def test_ids_are_positions_in_the_sorted_vocabulary():
    tokenizer = CharTokenizer.from_text("hello world")
    assert tokenizer.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tokenizer.encode("hold") == [3, 5, 4, 1]


def test_decode_accepts_numpy_arrays_and_generators():
    tokenizer = CharTokenizer("abc")
    assert tokenizer.decode(np.array([2, 0, 1], dtype=np.int64)) == "cab"
    assert tokenizer.decode(i for i in (1, 1)) == "bb"


def test_encode_error_names_unknown_character_position_and_vocab_size():
    tokenizer = CharTokenizer("ab")
    with pytest.raises(ValueError) as info:
        tokenizer.encode("abba\tb")
    message = str(info.value)
    assert "'\\t'" in message
    assert "position 4" in message
    assert "vocab_size=2" in message


@pytest.mark.parametrize("bad_id", [3, -1, 100])
def test_decode_error_names_out_of_range_id_and_vocab_size(bad_id):
    tokenizer = CharTokenizer("abc")
    with pytest.raises(ValueError) as info:
        tokenizer.decode([0, bad_id])
    assert f"token id {bad_id}" in str(info.value)
    assert "vocab_size=3" in str(info.value)


def test_decode_rejects_non_integer_ids():
    with pytest.raises(TypeError):
        CharTokenizer("abc").decode([1.0])


@pytest.mark.parametrize("chars", ["", "aba", ["a", "bc"]])
def test_constructor_rejects_empty_repeated_or_multichar_vocabularies(chars):
    with pytest.raises(ValueError):
        CharTokenizer(chars)


def test_save_then_load_gives_the_same_vocabulary(tmp_path):
    tokenizer = CharTokenizer.from_text("To be, or not to be\n\u00e9\u4e2d")
    path = tmp_path / "tok.json"
    tokenizer.save(path)
    loaded = CharTokenizer.load(str(path))
    assert loaded.chars == tokenizer.chars
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "type": "char",
        "chars": tokenizer.chars,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]


def test_from_dict_rejects_another_tokenizer_type():
    with pytest.raises(ValueError, match="'bpe'"):
        CharTokenizer.from_dict({"type": "bpe", "chars": ["a"]})
