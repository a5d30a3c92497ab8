"""Sentence pairs for the translation trainer: a generated number-words → digits task, TSV corpora, a word-level
vocabulary and padding-aware batches by length.

Sits in `train/` beside `corpus.py`; `train/translate.py` uses it, the model (`models/transformer.py`) never does.

The generated task translates English number words into digits with thousands separators, one token per word and
per digit:

    "three hundred forty two thousand six"   →   "3 4 2 , 0 0 6"
    "nineteen"                               →   "1 9"

It is small (30 word types in, 11 tokens out) but not a lookup: the output length depends on the magnitude, words
map to digits by position ("forty two" is "4 2" but "twelve" is "1 2"), missing places must be filled with zeros and
a comma inserted. Numbers are drawn from a seed, with the number of digits uniform in 1…6, and the held-out numbers
never occur in training.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinytensor.io import atomic_write_text, read_text
from train.corpus import CorpusError

Pair = tuple[str, str]

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
MAX_NUMBER = 999_999


# ---- the number task ----------------------------------------------------------------------------------------------
def number_to_words(number: int) -> str:
    """0 … 999,999 in English words, American style without "and": 105 → "one hundred five"."""
    if not 0 <= number <= MAX_NUMBER:
        raise ValueError(f"numbers go from 0 to {MAX_NUMBER:,}, got {number}")
    if number == 0:
        return "zero"
    thousands, rest = divmod(number, 1000)
    words = [*_below_thousand(thousands), "thousand"] if thousands else []
    return " ".join(words + _below_thousand(rest))


def _below_thousand(number: int) -> list[str]:
    """Words for 1 … 999 (none for 0)."""
    hundreds, rest = divmod(number, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if rest >= 20:
        words += [TENS[rest // 10]] + ([ONES[rest % 10]] if rest % 10 else [])
    elif rest:
        words.append(ONES[rest])
    return words


def number_to_digits(number: int) -> str:
    """The target side: digits with a comma between thousands, space-separated tokens: 42006 → "4 2 , 0 0 6"."""
    return " ".join(f"{number:,}")


def words_to_number(text: str) -> int:
    """The inverse of `number_to_words` (used to check the generator, not by the model)."""
    total, current = 0, 0
    for word in text.split():
        if word == "thousand":
            total, current = (current or 1) * 1000, 0
        elif word == "hundred":
            current *= 100
        elif word in TENS:
            current += 10 * TENS.index(word)
        else:
            current += ONES.index(word)
    return total + current


def number_pairs(num_train: int, num_held_out: int, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """(train, held_out) pairs of (words, digits) for distinct numbers; no held-out number occurs in training.

    Deterministic in `seed`. The digit count is uniform in 1…6, so short numbers are as common as long ones
    (all 1- to 3-digit numbers are few, so most of them land in training)."""
    numbers = _distinct_numbers(num_train + num_held_out, np.random.default_rng(seed))
    pairs = [(number_to_words(n), number_to_digits(n)) for n in numbers]
    return pairs[:num_train], pairs[num_train:]


def _distinct_numbers(count: int, rng: np.random.Generator) -> list[int]:
    if count > MAX_NUMBER + 1:
        raise ValueError(f"only {MAX_NUMBER + 1:,} distinct numbers exist, asked for {count:,}")
    seen: dict[int, None] = {}
    while len(seen) < count:
        digits = rng.integers(1, 7, size=count)
        low = np.where(digits == 1, 0, 10 ** (digits - 1))
        seen.update(dict.fromkeys(rng.integers(low, 10**digits).tolist()))
    return list(seen)[:count]


# ---- real corpora -------------------------------------------------------------------------------------------------
def read_tsv(path: str | Path) -> list[Pair]:
    """Sentence pairs from a UTF-8 file of `source<TAB>target` lines (blank lines skipped)."""
    pairs = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 2 or not columns[0].strip() or not columns[1].strip():
            raise CorpusError(f"{path}, line {number}: expected 'source<TAB>target', got {line!r}")
        pairs.append((columns[0].strip(), columns[1].strip()))
    if len(pairs) < 2:
        raise CorpusError(f"{path} holds {len(pairs)} sentence pair(s); training and held-out need at least 2")
    return pairs


def split_pairs(pairs: Sequence[Pair], held_out_fraction: float = 0.1, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """A seeded shuffle cut into (train, held_out); at least one pair is held out."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    cut = len(pairs) - max(1, round(len(pairs) * held_out_fraction))
    return [pairs[i] for i in order[:cut]], [pairs[i] for i in order[cut:]]


# ---- vocabulary ---------------------------------------------------------------------------------------------------
class WordVocabulary:
    """A whitespace word vocabulary shared by source and target; ids 0…3 are <pad>, <bos>, <eos>, <unk>."""

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    pad_id, bos_id, eos_id, unk_id = range(4)

    def __init__(self, words: Sequence[str]):
        self.words = list(self.SPECIALS) + [w for w in words if w not in self.SPECIALS]
        self.ids = {word: index for index, word in enumerate(self.words)}

    @classmethod
    def from_pairs(cls, pairs: Sequence[Pair]) -> WordVocabulary:
        """Every word of either side, in order of first appearance."""
        seen: dict[str, None] = {}
        for source, target in pairs:
            seen.update(dict.fromkeys(source.split()))
            seen.update(dict.fromkeys(target.split()))
        return cls(list(seen))

    @property
    def size(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(word, self.unk_id) for word in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i] for i in ids)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def to_dict(self) -> dict:
        return {"type": "word", "words": self.words}

    @classmethod
    def from_dict(cls, data: dict) -> WordVocabulary:
        if not isinstance(data, dict) or data.get("type") != "word" or not isinstance(data.get("words"), list):
            raise ValueError("expected a word vocabulary record ({'type': 'word', 'words': [...]})")
        return cls(data["words"])

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> WordVocabulary:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# ---- batches ------------------------------------------------------------------------------------------------------
class LengthBatches:
    """Padding-aware batches: pairs sorted by length and cut into batches of at most `max_tokens` padded tokens
    (the larger of source and target side), as the paper batches by approximate length (§5.1).

    `batch(index)` gives numpy int64 arrays (src [B, S], tgt_in [B, T], tgt_out [B, T]): tgt_in is
    <bos> + target and tgt_out is target + <eos>, both padded with <pad>, the teacher-forcing pair."""

    def __init__(self, encoded_pairs: Sequence[tuple[list[int], list[int]]], max_tokens: int, vocab: WordVocabulary):
        self.pairs, self.vocab = list(encoded_pairs), vocab
        self.batches = self._group(max_tokens)

    def _group(self, max_tokens: int) -> list[list[int]]:
        order = sorted(range(len(self.pairs)), key=lambda i: (len(self.pairs[i][0]), len(self.pairs[i][1])))
        batches, current, longest = [], [], 0
        for index in order:
            source, target = self.pairs[index]
            length = max(len(source), len(target) + 1)
            if current and max(longest, length) * (len(current) + 1) > max_tokens:
                batches.append(current)
                current, longest = [], 0
            current.append(index)
            longest = max(longest, length)
        return batches + [current] if current else batches

    def __len__(self) -> int:
        return len(self.batches)

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chosen = [self.pairs[i] for i in self.batches[index]]
        bos, eos = [self.vocab.bos_id], [self.vocab.eos_id]
        return (pad_rows([s for s, _ in chosen], self.vocab.pad_id),
                pad_rows([bos + t for _, t in chosen], self.vocab.pad_id),
                pad_rows([t + eos for _, t in chosen], self.vocab.pad_id))

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch drawn uniformly (so a random stream keeps training reproducible and resumable)."""
        return self.batch(int(rng.integers(len(self.batches))))


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> np.ndarray:
    """Id lists → one int64 array [len(rows), longest], right-padded with pad_id."""
    out = np.full((len(rows), max(len(row) for row in rows)), pad_id, dtype=np.int64)
    for index, row in enumerate(rows):
        out[index, :len(row)] = row
    return out
