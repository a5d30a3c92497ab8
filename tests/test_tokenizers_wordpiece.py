"""Tests for the WordPiece tokenizer (BERT's) in models.tokenizers.

Parity with Hugging Face's Python BertTokenizer is checked against tests/fixtures/wordpiece/, written by
tests/fixtures/make_wordpiece_fixture.py: a small vocab.txt and, for an uncased and a cased setting, HF's tokens and
ids for ~40 strings, pairs with token type ids, padded and truncated batches, and decoded id sequences. The suite
itself does not need `transformers`.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.tokenizers import WordPieceTokenizer, basic_tokenize

FIXTURE = Path(__file__).parent / "fixtures" / "wordpiece"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))
SETTINGS = ["uncased", "cased"]


@functools.cache
def fixture_tokenizer(setting: str) -> WordPieceTokenizer:
    """The fixture's vocabulary, lowercasing as the setting did in HF."""
    return WordPieceTokenizer.from_vocab(FIXTURE / "vocab.txt", lowercase=EXPECTED[setting]["do_lower_case"])


def cases(section: str) -> list:
    """(setting, case) for every case of ``section`` in both settings, with readable test ids."""
    return [pytest.param(setting, case, id=f"{setting}-{repr(case.get('text', case.get('ids')))[:30]}")
            for setting in SETTINGS for case in EXPECTED[setting][section]]


@pytest.mark.parametrize(("setting", "case"), cases("encode"))
def test_tokens_and_ids_match_hugging_face_bert_tokenizer(setting, case):
    tokenizer = fixture_tokenizer(setting)
    assert tokenizer.tokenize(case["text"]) == case["tokens"]
    assert tokenizer.encode(case["text"]) == case["ids"]


def test_fixture_covers_many_kinds_of_text_in_both_settings():
    for setting in SETTINGS:
        assert len(EXPECTED[setting]["encode"]) >= 40
    assert EXPECTED["uncased"]["do_lower_case"] and not EXPECTED["cased"]["do_lower_case"]


@pytest.mark.parametrize(("setting", "case"), cases("pairs"))
def test_pairs_match_hugging_face_ids_and_token_type_ids(setting, case):
    tokenizer = fixture_tokenizer(setting)
    assert tokenizer.encode(case["text"], case["text_pair"]) == case["input_ids"]
    batch = tokenizer(case["text"], case["text_pair"])
    assert batch["input_ids"].tolist() == [case["input_ids"]]
    assert batch["token_type_ids"].tolist() == [case["token_type_ids"]]


@pytest.mark.parametrize(("setting", "case"), cases("batches"))
def test_padded_and_truncated_batches_match_hugging_face(setting, case):
    options = {key: case[key] for key in ("text_pair", "padding", "truncation", "max_length") if key in case}
    batch = fixture_tokenizer(setting)(case["text"], **options)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert batch[key].dtype == np.int64
        assert batch[key].tolist() == case[key], key


@pytest.mark.parametrize(("setting", "case"), cases("decode"))
def test_decode_matches_hugging_face_with_and_without_special_tokens(setting, case):
    tokenizer = fixture_tokenizer(setting)
    assert tokenizer.decode(case["ids"]) == case["text"]
    assert tokenizer.decode(np.array(case["ids"]), skip_special_tokens=True) == case["text_skip_special"]


# Text drawn from all of Unicode, mixed with fragments that exercise special tokens, CJK, accents and controls.
FRAGMENTS = ["[MASK]", "[SEP", " ", "\t", "\x00", "日本", "é", "e\u0301", "don't", "fox", "##s", "!!"]
texts = st.lists(st.one_of(st.text(max_size=8), st.sampled_from(FRAGMENTS)), max_size=8).map("".join)


@given(texts, texts, st.integers(min_value=3, max_value=12))
def test_any_text_gives_vocabulary_tokens_and_truncated_pairs_fit_max_length(text, text_pair, max_length):
    tokenizer = fixture_tokenizer("uncased")
    assert all(tokenizer.token_to_id(token) >= 0 for token in tokenizer.tokenize(text))
    batch = tokenizer([text], [text_pair], truncation=True, max_length=max_length, padding="max_length")
    n_tokens = min(max_length, len(tokenizer.encode(text, text_pair)))
    assert batch["input_ids"].shape == (1, max_length)
    assert batch["attention_mask"].tolist() == [[1] * n_tokens + [0] * (max_length - n_tokens)]


def test_pair_truncation_cuts_the_longer_side_first_then_both():
    tokenizer = fixture_tokenizer("uncased")
    first, second = "the quick brown fox jumps over", "the lazy dog"  # 7 and 3 word pieces
    ids = tokenizer([first], [second], truncation=True, max_length=9)["input_ids"][0].tolist()
    assert ids == tokenizer.encode("the quick brown", second)  # 4 cut from the first, none from the second
    ids = tokenizer([first], [second], truncation=True, max_length=6)["input_ids"][0].tolist()
    assert ids == tokenizer.encode("the quick", "the")  # then by turns, the second first: 5 from the first, 2


def test_decode_restores_lowercase_text_made_of_vocabulary_words():
    tokenizer = fixture_tokenizer("uncased")
    text = "the quick brown fox jumps over the lazy dog unaffable tokenization 日 本"
    assert "##s" in tokenizer.tokenize(text) and "##aff" in tokenizer.tokenize(text)
    assert tokenizer.decode(tokenizer.encode(text), skip_special_tokens=True) == text


def test_special_tokens_typed_in_text_stay_one_token_even_when_glued_to_words():
    tokenizer = fixture_tokenizer("uncased")
    assert tokenizer.tokenize("The[MASK]fox [SEP]") == ["the", "[MASK]", "fox", "[SEP]"]
    assert tokenizer.tokenize("[Mask]") == ["[", "m", "##a", "##s", "##k", "]"]  # matching is case-sensitive


def test_a_word_longer_than_max_input_chars_per_word_becomes_unk():
    tokenizer = fixture_tokenizer("uncased")
    assert tokenizer.max_input_chars_per_word == 100
    assert tokenizer.tokenize("ab" * 50) == ["a", *["##b", "##a"] * 49, "##b"]
    assert tokenizer.tokenize("ab" * 50 + "a") == ["[UNK]"]


def test_a_word_with_a_piece_missing_from_the_vocabulary_becomes_one_unk():
    tokenizer = fixture_tokenizer("uncased")
    assert tokenizer.tokenize("fox jazz dog") == ["fox", "[UNK]", "dog"]  # "##z" is not in the vocabulary


def test_basic_tokenization_cleans_splits_and_lowercases_only_when_uncased():
    text = "Héllo,\x00world\u200b 日本\tDON'T"
    assert basic_tokenize(text, lowercase=True) == ["hello", ",", "world", "日", "本", "don", "'", "t"]
    assert basic_tokenize(text, lowercase=False) == ["Héllo", ",", "world", "日", "本", "DON", "'", "T"]


def test_unpadded_batch_of_unequal_lengths_is_rejected():
    with pytest.raises(ValueError, match="different lengths"):
        fixture_tokenizer("uncased")(["a", "b c"])


def test_truncation_without_room_for_the_special_tokens_is_rejected():
    with pytest.raises(ValueError, match="max_length=2 leaves no room for the 3 special tokens"):
        fixture_tokenizer("uncased")(["a"], ["b"], truncation=True, max_length=2)


def test_save_pretrained_then_from_pretrained_round_trips_vocab_and_casing(tmp_path):
    cased = fixture_tokenizer("cased")
    cased.save_pretrained(tmp_path)
    assert (tmp_path / "vocab.txt").read_bytes() == (FIXTURE / "vocab.txt").read_bytes()
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["do_lower_case"] is False
    loaded = WordPieceTokenizer.from_pretrained(tmp_path)
    assert loaded.lowercase is False and loaded.vocab_size == cased.vocab_size == 230
    assert loaded.encode("Café BERT") == cased.encode("Café BERT") != fixture_tokenizer("uncased").encode("Café BERT")


def test_from_pretrained_without_a_config_is_uncased_as_in_hugging_face():
    assert WordPieceTokenizer.from_pretrained(FIXTURE).lowercase is True
    assert WordPieceTokenizer.from_pretrained(FIXTURE, lowercase=False).lowercase is False


def test_token_to_id_and_id_to_token_are_inverse():
    tokenizer = fixture_tokenizer("uncased")
    assert tokenizer.vocab_size == len(tokenizer) == 230
    for token_id in range(tokenizer.vocab_size):
        assert tokenizer.token_to_id(tokenizer.id_to_token(token_id)) == token_id
    assert (tokenizer.token_to_id("[PAD]"), tokenizer.token_to_id("[UNK]"), tokenizer.pad_token_id) == (1, 3, 1)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tokenizer.token_to_id("no such token")


def test_missing_vocab_file_is_reported_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        WordPieceTokenizer.from_vocab(tmp_path / "nowhere" / "vocab.txt")


@pytest.mark.parametrize("bad_id", [-1, 230, 10**6])
def test_decode_rejects_an_unknown_id_naming_it_and_the_vocab_size(bad_id):
    with pytest.raises(ValueError, match=rf"token id {bad_id} is out of range for vocab_size=230"):
        fixture_tokenizer("uncased").decode([4, bad_id])


def test_vocabulary_that_repeats_a_token_is_rejected_naming_it():
    with pytest.raises(ValueError, match=r"repeats token 'a' \(ids 5 and 6\)"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "a"])


def test_vocabulary_without_the_special_tokens_is_rejected_naming_them():
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[CLS\]', '\[MASK\]'\]"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[SEP]", "a"])
