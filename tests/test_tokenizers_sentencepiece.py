"""Tests for the SentencePiece tokenizer in models.tokenizers (Unigram and BPE with byte fallback).

Parity with the `sentencepiece` library and with Hugging Face `tokenizers` is checked against
tests/fixtures/sentencepiece/, written by tests/fixtures/make_sentencepiece_fixture.py: three small models trained by
`sentencepiece` (unigram.model with the nmt_nfkc charsmap and user-defined/control pieces, bpe.model with
byte_fallback and the identity normalizer, unigram_cf.model with NFKC + case folding and no dummy prefix), the ids
and decoded text of 402 strings for each, and two tokenizer.json files with the ids `tokenizers` gives.
"""
import json
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.tokenizers import SentencePieceTokenizer
from models.tokenizers.sentencepiece import SentencePieceError, proto_fields, read_model_proto

FIXTURE = Path(__file__).parent / "fixtures" / "sentencepiece"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))
HF_EXPECTED = json.loads((FIXTURE / "hf_expected.json").read_text(encoding="utf-8"))
STRINGS = EXPECTED["strings"]
MODELS = tuple(EXPECTED["models"])


def mismatches(tokenizer, expected_ids):
    return [(text, want, got) for text, want in zip(STRINGS, expected_ids)
            if (got := tokenizer.encode(text)) != want]


@pytest.mark.parametrize("name", MODELS)
def test_ids_match_sentencepiece_on_every_fixture_string(name):
    tokenizer = SentencePieceTokenizer.from_file(FIXTURE / f"{name}.model")
    assert len(STRINGS) >= 400
    assert mismatches(tokenizer, EXPECTED["models"][name]["ids"]) == []


@pytest.mark.parametrize("name", MODELS)
def test_pieces_and_decoding_match_sentencepiece(name):
    tokenizer = SentencePieceTokenizer.from_file(FIXTURE / f"{name}.model")
    expected = EXPECTED["models"][name]
    for text, ids, pieces, decoded in zip(STRINGS, expected["ids"], expected["pieces"], expected["decoded"]):
        # sentencepiece shows an unknown piece as the text it covers; id_to_piece gives "<unk>"
        assert [tokenizer.id_to_piece(i) for i in ids] == \
            [tokenizer.id_to_piece(i) if i == tokenizer.unk_id else piece for i, piece in zip(ids, pieces)]
        assert tokenizer.decode(ids) == decoded, text


@pytest.mark.parametrize("name", MODELS)
def test_special_ids_and_add_special_tokens_follow_the_model(name):
    tokenizer = SentencePieceTokenizer.from_file(FIXTURE / f"{name}.model")
    expected = EXPECTED["models"][name]
    assert (tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id, tokenizer.vocab_size) == \
        (expected["unk_id"], expected["bos_id"], expected["eos_id"], expected["pad_id"], expected["vocab_size"])
    ids = tokenizer.encode("Hello world")
    assert tokenizer.encode("Hello world", add_special_tokens=True) == [expected["bos_id"], *ids, expected["eos_id"]]
    assert tokenizer.decode([expected["bos_id"], *ids, expected["eos_id"]]) == tokenizer.decode(ids)


@pytest.mark.parametrize("name", ["unigram", "bpe"])
def test_ids_match_hugging_face_tokenizers_for_a_tokenizer_json(name):
    tokenizer = SentencePieceTokenizer.from_pretrained(FIXTURE / "hf" / name)
    assert mismatches(tokenizer, HF_EXPECTED["models"][name]["ids"]) == []


def test_tokenizer_json_templates_give_the_special_tokens_of_the_checkpoint():
    albert = SentencePieceTokenizer.from_pretrained(FIXTURE / "hf" / "unigram")
    llama = SentencePieceTokenizer.from_pretrained(FIXTURE / "hf" / "bpe")
    assert albert.encode("x", add_special_tokens=True)[0] == albert.piece_to_id("[CLS]")
    assert llama.encode("x", add_special_tokens=True) == [1, *llama.encode("x")]
    assert llama.encode("<s>") == [1]                       # added tokens typed in text stay one id, as in HF


def test_byte_fallback_spells_unknown_characters_as_utf8_bytes_and_decodes_them_back():
    tokenizer = SentencePieceTokenizer.from_file(FIXTURE / "bpe.model")
    text = "snow \u2603 and \U0001f600"
    pieces = tokenizer.tokenize(text)
    assert "<0xE2>" in pieces and "<0xF0>" in pieces and tokenizer.unk_id not in tokenizer.encode(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode([tokenizer.piece_to_id("<0xE2>")]) == "\ufffd"   # a cut character shows as U+FFFD


def test_unigram_unknown_run_is_one_unknown_piece_and_decodes_as_its_surface():
    tokenizer = SentencePieceTokenizer.from_file(FIXTURE / "unigram.model")
    ids = tokenizer.encode("\u0627\u0644\u0639\u0631\u0628\u064a\u0629")     # Arabic: outside the vocabulary
    assert ids.count(tokenizer.unk_id) == 1
    assert tokenizer.decode(ids) == " \u2047 "


def test_user_defined_pieces_are_kept_whole_and_control_pieces_are_not_matched_in_text():
    tokenizer = SentencePieceTokenizer.from_file(FIXTURE / "unigram.model")
    mask = tokenizer.piece_to_id("[MASK]")
    assert mask in tokenizer.encode("a[MASK]b") and tokenizer.piece_to_id("[CLS]") not in tokenizer.encode("[CLS]")


@pytest.mark.parametrize("file_name", ["spiece.model", "spm.model", "tokenizer.model"])
def test_from_pretrained_finds_each_model_file_name(tmp_path, file_name):
    shutil.copy(FIXTURE / "bpe.model", tmp_path / file_name)
    tokenizer = SentencePieceTokenizer.from_pretrained(tmp_path)
    assert tokenizer.encode("Hello world") == EXPECTED["models"]["bpe"]["ids"][STRINGS.index("Hello world")]


def test_from_pretrained_without_a_model_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        SentencePieceTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("content", [b"", b"\x0a\x05ab", b"\xff" * 12, b"\x0a\x80", b"\x0f\x00\x00"])
def test_malformed_model_files_raise_the_library_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.model"
    path.write_bytes(content)
    with pytest.raises(SentencePieceError, match="broken.model"):
        SentencePieceTokenizer.from_file(path)


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(0, 5959), flips=st.lists(st.tuples(st.integers(0, 5959), st.integers(1, 255)), max_size=3))
def test_truncated_or_corrupted_model_files_load_or_raise_the_library_error(tmp_path_factory, cut, flips):
    data = bytearray((FIXTURE / "bpe.model").read_bytes())
    for position, mask in flips:
        data[position % len(data)] ^= mask
    path = tmp_path_factory.mktemp("corrupt") / "bpe.model"
    path.write_bytes(bytes(data[:cut]) if cut % 2 else bytes(data))
    try:
        tokenizer = SentencePieceTokenizer.from_file(path)
    except SentencePieceError as error:
        assert str(path) in str(error)
    else:
        tokenizer.decode(tokenizer.encode("Shall I compare thee"))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field(number: int, value) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    if isinstance(value, float):
        return _varint(number << 3 | 5) + struct.pack("<f", value)
    return _varint(number << 3) + _varint(value & ((1 << 64) - 1))


def test_wire_format_reader_reads_a_hand_written_model_proto():
    pieces = [("<unk>", 0.0, 2), ("\u2581a", -1.5, 1), ("b", -2.0, 1)]
    data = b"".join(_field(1, _field(1, piece.encode()) + _field(2, score) + _field(3, kind))
                    for piece, score, kind in pieces)
    data += _field(2, _field(3, 1) + _field(41, -1) + _field(42, -1) + _field(99, 7))    # unknown field 99 skipped
    data += _field(3, _field(4, 0))
    proto = read_model_proto(data)
    assert proto.pieces == pieces and (proto.bos_id, proto.eos_id) == (-1, -1) and not proto.remove_extra_whitespaces
    assert [number for number, _ in proto_fields(data)] == [1, 1, 1, 2, 3]
    tokenizer = SentencePieceTokenizer(proto)
    assert tokenizer.encode("ab") == [1, 2] and tokenizer.encode("ab", add_special_tokens=True) == [1, 2]
    assert tokenizer.encode("ac") == [1, 0]
