"""Corpus-level BLEU (Papineni et al. 2002) and exact-match accuracy, the scores `train/translate.py` reports.

BLEU = BP · exp(¼ Σ_{n=1..4} log p_n) · 100, where p_n is the corpus's clipped n-gram precision (matches summed
over all sentences, divided by all hypothesis n-grams) and BP = min(1, exp(1 − r/c)) the brevity penalty for
hypothesis length c and reference length r, both summed over the corpus. This is multi-bleu.perl's and
sacreBLEU's `smooth_method="none"` on pre-tokenised text with one reference: no smoothing, so a corpus with no
matching 4-gram scores 0. Sentences are token lists; tokenise both sides the same way first.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

Tokens = Sequence[str]


def ngram_counts(tokens: Tokens, n: int) -> Counter:
    """How often each n-gram (a tuple of n tokens) occurs in `tokens`."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[Tokens], references: Sequence[Tokens], max_order: int = 4) -> float:
    """BLEU in 0…100 of tokenised hypotheses against one tokenised reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    matches, totals = [0] * max_order, [0] * max_order
    hypothesis_length = reference_length = 0
    for hypothesis, reference in zip(hypotheses, references):
        hypothesis_length += len(hypothesis)
        reference_length += len(reference)
        for n in range(1, max_order + 1):
            hypothesis_ngrams, reference_ngrams = ngram_counts(hypothesis, n), ngram_counts(reference, n)
            matches[n - 1] += sum((hypothesis_ngrams & reference_ngrams).values())  # clipped counts
            totals[n - 1] += max(len(hypothesis) - n + 1, 0)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_order
    return 100.0 * brevity_penalty(hypothesis_length, reference_length) * math.exp(log_precision)


def brevity_penalty(hypothesis_length: int, reference_length: int) -> float:
    """1 when the hypotheses are at least as long as the references, else exp(1 − r/c)."""
    if hypothesis_length >= reference_length:
        return 1.0
    return math.exp(1 - reference_length / hypothesis_length) if hypothesis_length else 0.0


def exact_match(hypotheses: Sequence[Tokens], references: Sequence[Tokens]) -> float:
    """The fraction (0…1) of hypotheses identical to their reference, token for token."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not references:
        return 0.0
    return sum(list(h) == list(r) for h, r in zip(hypotheses, references)) / len(references)
