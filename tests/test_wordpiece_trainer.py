"""The WordPiece vocabulary learner (train/wordpiece_trainer.py): specials, coverage, merges, files."""
import numpy as np
import pytest

from models.tokenizers.wordpiece import SPECIAL_TOKENS, UNK, WordPieceTokenizer
from train import wordpiece_trainer
from train.wordpiece_trainer import initial_pieces, merge_pieces, train_tokenizer, train_wordpiece

WORDS = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "nobler", "mind", "suffer",
         "Slings", "arrows", "outrageous", "fortune,", "Résumé!"]


@pytest.fixture(scope="module")
def text():
    rng = np.random.default_rng(0)
    return "\n".join(" ".join(rng.choice(WORDS, 8)) for _ in range(300))


def test_words_start_as_characters_with_continuation_pieces_and_merge_into_longer_pieces():
    assert initial_pieces("the") == ["t", "##h", "##e"]
    assert merge_pieces("t", "##h") == "th" and merge_pieces("##h", "##e") == "##he"


def test_vocabulary_starts_with_the_special_tokens_and_has_the_asked_size_without_repeats(text):
    vocab = train_wordpiece(text, 80)
    assert tuple(vocab[:len(SPECIAL_TOKENS)]) == SPECIAL_TOKENS and vocab[0] == "[PAD]"
    assert len(vocab) == 80 and len(set(vocab)) == 80


def test_frequent_words_become_single_pieces_and_text_is_lowercased_without_accents(text):
    tokenizer = train_tokenizer(text, 120)
    assert tokenizer.tokenize("the question") == ["the", "question"]
    assert tokenizer.tokenize("The RESUME") == tokenizer.tokenize("the résumé")


def test_the_training_text_tokenizes_without_unknown_tokens_and_unseen_characters_do(text):
    tokens = train_tokenizer(text, 60).tokenize(text)
    assert UNK not in tokens and len(tokens) > 2400
    tokenizer = train_tokenizer(text, 500)  # every word merged whole; the merges run out before 500
    assert tokenizer.vocab_size < 500
    assert tokenizer.tokenize("to be ☃") == ["to", "be", UNK]


def test_a_cased_vocabulary_keeps_capitals(text):
    assert "S" in train_wordpiece(text, 100, lowercase=False) and "S" not in train_wordpiece(text, 100)


def test_training_is_deterministic_and_stops_when_pairs_become_rare(text):
    assert train_wordpiece(text, 150) == train_wordpiece(text, 150)
    assert len(train_wordpiece("ab ab cd", 100, min_frequency=2)) < 100


def test_a_vocabulary_too_small_for_the_characters_is_a_clear_error(text):
    with pytest.raises(ValueError, match="character pieces"):
        train_wordpiece(text, 10)


def test_the_command_writes_a_vocab_txt_that_the_tokenizer_loads(text, tmp_path):
    data = tmp_path / "corpus.txt"
    data.write_text(text, encoding="utf-8")
    assert wordpiece_trainer.main(["--data", str(data), "--out", str(tmp_path / "vocab"), "--vocab-size", "90"]) == 0
    loaded = WordPieceTokenizer.from_pretrained(tmp_path / "vocab")
    assert loaded.vocab_size == 90 and loaded.tokenize(text) == train_tokenizer(text, 90).tokenize(text)
    assert wordpiece_trainer.main(["--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x")]) == 2
