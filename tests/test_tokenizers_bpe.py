"""Tests for the byte-level BPE tokenizer (GPT-2's) in models.tokenizers.

Parity with Hugging Face `tokenizers` is checked against tests/fixtures/bpe/, written by
tests/fixtures/make_bpe_fixture.py: a vocabulary HF trained on corpus.txt, HF's pre-tokens and ids for a set of
strings, and HF's decoding of random id sequences. The suite itself does not need `tokenizers`.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.tokenizers import ByteLevelBPETokenizer, bytes_to_unicode, pretokenize

FIXTURE = Path(__file__).parent / "fixtures" / "bpe"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))
EOT = "<|endoftext|>"


@functools.cache
def hf_trained() -> ByteLevelBPETokenizer:
    """The fixture's tokenizer (trained by HF); cached because Hypothesis calls tests many times."""
    return ByteLevelBPETokenizer.from_pretrained(FIXTURE)


def byte_level(text: str) -> str:
    """Text as HF shows pre-tokens: UTF-8 bytes written with GPT-2's byte characters."""
    encoder = bytes_to_unicode()
    return "".join(encoder[byte] for byte in text.encode("utf-8"))


# Text drawn from all of Unicode (Hypothesis leaves out lone surrogates, which UTF-8 cannot encode), mixed with
# fragments that exercise the regex's edge cases and the special token.
FRAGMENTS = [EOT, "<|endof", "'s", "'ll", " ", "   ", "\n", "\t", "\u3000", "12", "é", "👍🏽"]
texts = st.lists(st.one_of(st.text(), st.sampled_from(FRAGMENTS))).map("".join)


@given(texts)
def test_decode_inverts_encode_for_any_unicode_text(text):
    tokenizer = hf_trained()
    assert tokenizer.decode(tokenizer.encode(text)) == text


@given(texts)
def test_pretokens_concatenate_back_to_the_text(text):
    assert "".join(pretokenize(text)) == text


@pytest.mark.parametrize("case", EXPECTED["encode"], ids=lambda case: repr(case["text"])[:30])
def test_pretokens_match_hugging_face_byte_level_pre_tokenizer(case):
    assert [byte_level(piece) for piece in pretokenize(case["text"])] == case["pretokens"]


@pytest.mark.parametrize("case", EXPECTED["encode"], ids=lambda case: repr(case["text"])[:30])
def test_encode_matches_hugging_face_ids_and_decode_restores_the_text(case):
    tokenizer = hf_trained()
    assert tokenizer.encode(case["text"]) == case["ids"]
    assert tokenizer.decode(case["ids"]) == case["text"]


def test_fixture_covers_many_kinds_of_text():
    assert len(EXPECTED["encode"]) >= 40


@pytest.mark.parametrize("case", EXPECTED["decode"], ids=lambda case: str(case["ids"]))
def test_decode_of_arbitrary_ids_matches_hugging_face_replacing_broken_utf8(case):
    assert hf_trained().decode(case["ids"]) == case["text"]


def test_decode_marks_a_cut_multibyte_character_with_the_replacement_character():
    tokenizer = hf_trained()
    first_byte_of_e_acute = tokenizer.token_to_id(byte_level("é")[0])
    assert tokenizer.decode([first_byte_of_e_acute, tokenizer.token_to_id("a")]) == "\ufffda"


def test_special_token_typed_in_text_stays_one_id():
    tokenizer = hf_trained()
    eot_id = tokenizer.token_to_id(EOT)
    ids = tokenizer.encode(f"a{EOT}b {EOT}")
    assert ids == [tokenizer.token_to_id("a"), eot_id, tokenizer.token_to_id("b"), tokenizer.token_to_id("Ġ"), eot_id]
    assert tokenizer.special_tokens == (EOT,)


def test_without_special_tokens_the_marker_is_plain_text():
    tokenizer = ByteLevelBPETokenizer.from_pretrained(FIXTURE, special_tokens=())
    ids = tokenizer.encode(EOT)
    assert len(ids) > 1 and tokenizer.token_to_id(EOT) not in ids
    assert tokenizer.decode(ids) == EOT


def test_special_token_not_in_vocabulary_is_rejected():
    with pytest.raises(ValueError, match="<pad>"):
        ByteLevelBPETokenizer.from_pretrained(FIXTURE, special_tokens=("<pad>",))


def test_decode_accepts_numpy_id_arrays():
    tokenizer = hf_trained()
    ids = tokenizer.encode("Hello, world")
    assert tokenizer.decode(np.array(ids, dtype=np.int64)) == "Hello, world"


@pytest.mark.parametrize("bad_id", [-1, 400, 10**6])
def test_decode_rejects_an_unknown_id_naming_it_and_the_vocab_size(bad_id):
    with pytest.raises(ValueError, match=rf"token id {bad_id} is out of range for vocab_size=400"):
        hf_trained().decode([1, bad_id])


def test_token_to_id_and_id_to_token_are_inverse():
    tokenizer = hf_trained()
    assert tokenizer.vocab_size == len(tokenizer) == 400
    for token_id in range(tokenizer.vocab_size):
        assert tokenizer.token_to_id(tokenizer.id_to_token(token_id)) == token_id
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tokenizer.token_to_id("no such token")


def test_byte_map_is_gpt2s_printable_bijection():
    encoder = bytes_to_unicode()
    assert sorted(encoder) == list(range(256)) and len(set(encoder.values())) == 256
    assert all(char.isprintable() and not char.isspace() for char in encoder.values())
    assert (encoder[ord(" ")], encoder[ord("\n")], encoder[ord("A")]) == ("Ġ", "Ċ", "A")


def test_save_pretrained_writes_hugging_faces_files_byte_for_byte(tmp_path):
    hf_trained().save_pretrained(tmp_path / "saved")
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "saved" / name).read_bytes() == (FIXTURE / name).read_bytes()


def test_save_pretrained_then_from_pretrained_round_trips_a_trained_tokenizer(tmp_path):
    trained = ByteLevelBPETokenizer.train("the cat sat on the mat, the end " * 4, vocab_size=270)
    trained.save_pretrained(tmp_path)
    loaded = ByteLevelBPETokenizer.from_pretrained(tmp_path)
    assert loaded.merges == trained.merges and loaded.vocab_size == trained.vocab_size == 270
    assert loaded.encode(f"the mat{EOT}") == trained.encode(f"the mat{EOT}")


def test_trainer_learns_hugging_faces_merges_and_vocab_from_the_fixture_corpus():
    trained = ByteLevelBPETokenizer.train_from_file(FIXTURE / "corpus.txt", vocab_size=400)
    assert trained.merges == hf_trained().merges
    assert [trained.id_to_token(i) for i in range(400)] == [hf_trained().id_to_token(i) for i in range(400)]


def test_first_merges_on_a_tiny_text_are_the_hand_computed_ones():
    # Pre-tokens "aaab" and "Ġaaab". Counts: (a,a)=4, (a,b)=2, (Ġ,a)=1 -> merge a+a. Then (aa,a)=2 and (a,b)=2 tie;
    # the tie goes to the smaller ids, and "a" is older than "aa" -> a+b. Then (aa,ab)=2; (Ġ,aaab)=1 is too rare.
    trained = ByteLevelBPETokenizer.train("aaab aaab", vocab_size=1000)
    assert trained.merges == [("a", "a"), ("a", "b"), ("aa", "ab")]
    assert trained.vocab_size == 1 + 256 + 3
    assert trained.encode("aaab aaab") == [trained.token_to_id("aaab"), trained.token_to_id("Ġ"),
                                           trained.token_to_id("aaab")]


def test_min_frequency_one_merges_pairs_seen_once():
    trained = ByteLevelBPETokenizer.train("aaab aaab", vocab_size=1000, min_frequency=1)
    assert trained.merges[-1] == ("Ġ", "aaab")


def test_ties_go_to_the_pair_with_the_smallest_ids_not_the_first_seen():
    trained = ByteLevelBPETokenizer.train(["dc", "ba", "dc", "ba"], vocab_size=1000)
    assert trained.merges == [("b", "a"), ("d", "c")]


def test_training_stops_at_the_requested_vocab_size():
    trained = ByteLevelBPETokenizer.train_from_file(FIXTURE / "corpus.txt", vocab_size=300)
    assert trained.vocab_size == 300
    assert trained.merges == hf_trained().merges[:300 - 257]


def test_training_does_not_depend_on_the_order_of_sequences():
    lines = (FIXTURE / "corpus.txt").read_text(encoding="utf-8").splitlines(keepends=True)[:200]
    forward = ByteLevelBPETokenizer.train(lines, vocab_size=350)
    backward = ByteLevelBPETokenizer.train(lines[::-1], vocab_size=350)
    assert forward.merges == backward.merges and len(forward.merges) > 50


def test_special_tokens_in_training_text_are_not_counted():
    trained = ByteLevelBPETokenizer.train(f"{EOT}x{EOT}x{EOT}", vocab_size=1000, min_frequency=1)
    assert trained.merges == []
    assert trained.encode(f"x{EOT}") == [trained.token_to_id("x"), 0]


def test_vocab_size_below_the_byte_alphabet_is_rejected():
    with pytest.raises(ValueError, match="vocab_size=100 is smaller than the 257"):
        ByteLevelBPETokenizer.train("abc", vocab_size=100)


def test_merges_file_with_a_malformed_line_is_rejected_naming_the_line(tmp_path):
    (tmp_path / "merges.txt").write_text("#version: 0.2\nĠ t\nh e x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="merge 2 is not two tokens"):
        ByteLevelBPETokenizer.from_files(FIXTURE / "vocab.json", tmp_path / "merges.txt")


def test_merge_whose_result_is_not_in_the_vocabulary_is_rejected():
    vocab = {char: i for i, char in enumerate(sorted(bytes_to_unicode().values()))}
    with pytest.raises(ValueError, match=r"merge 0 \('a', 'b'\)"):
        ByteLevelBPETokenizer(vocab, [("a", "b")])


def test_vocabulary_without_every_byte_is_rejected():
    with pytest.raises(ValueError, match="lacks 255 byte characters"):
        ByteLevelBPETokenizer({"a": 0}, [])


def test_vocabulary_with_gaps_in_ids_is_rejected():
    vocab = {char: i for i, char in enumerate(sorted(bytes_to_unicode().values()))}
    vocab["!"] = 999
    with pytest.raises(ValueError, match="ids must be exactly 0..255"):
        ByteLevelBPETokenizer(vocab, [])
