"""Corpus BLEU and exact match against cases worked out by hand."""
import math

import pytest

from train.bleu import brevity_penalty, corpus_bleu, exact_match


def tokens(*sentences: str) -> list[list[str]]:
    return [s.split() for s in sentences]


def test_a_perfect_translation_scores_100():
    corpus = tokens("the cat sat on the mat", "a b c d")
    assert corpus_bleu(corpus, corpus) == pytest.approx(100.0)


def test_a_short_hypothesis_pays_the_brevity_penalty():
    """Every n-gram of the 5-token hypothesis is in the 6-token reference, so BLEU = 100·exp(1 − 6/5)."""
    bleu = corpus_bleu(tokens("the cat sat on the"), tokens("the cat sat on the mat"))
    assert bleu == pytest.approx(100 * math.exp(-0.2))
    assert brevity_penalty(7, 6) == 1.0 and brevity_penalty(0, 6) == 0.0


def test_no_matching_4_gram_scores_zero():
    assert corpus_bleu(tokens("a b c d"), tokens("a b c e")) == 0.0


def test_repeated_words_are_clipped_to_their_count_in_the_reference():
    """Unigram BLEU of "the the the the" against "the cat": one "the" counts, so p1 = 1/4 and BP = 1."""
    assert corpus_bleu(tokens("the the the the"), tokens("the cat"), max_order=1) == pytest.approx(25.0)


def test_counts_are_summed_over_the_corpus_before_the_mean():
    """Sentence 1 matches 5/5, 4/4, 3/3, 2/2 n-grams; sentence 2 ("a b x d" for "a b c d") 3/4, 1/3, 0/2, 0/1.
    Alone, sentence 2 scores 0; pooled, p = 8/9, 5/7, 3/5, 2/3 and both sides have 9 tokens (BP = 1)."""
    hypotheses = tokens("a b c d e", "a b x d")
    references = tokens("a b c d e", "a b c d")
    assert corpus_bleu(hypotheses[1:], references[1:]) == 0.0
    expected = 100 * (8 / 9 * 5 / 7 * 3 / 5 * 2 / 3) ** 0.25
    assert corpus_bleu(hypotheses, references) == pytest.approx(expected)


def test_exact_match_counts_identical_token_sequences():
    assert exact_match(tokens("1 2", "3", "4 5"), tokens("1 2", "3 3", "4 5")) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(tokens("a", "b"), tokens("a"))
