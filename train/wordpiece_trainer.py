"""Learning a WordPiece vocabulary (``vocab.txt``) from text, for `models/tokenizers/wordpiece.py`.

    python -m train.wordpiece_trainer --data my.txt --vocab-size 2000 --out runs/vocab   # writes vocab.txt

BERT's own vocabularies came from Google's unreleased WordPiece learner (Schuster & Nakajima 2012), which picks
the piece that most raises the likelihood of a unigram language model. Hugging Face's `WordPieceTrainer` instead
learns BPE merges (Sennrich et al. 2016) over words whose later characters carry the ``##`` continuation prefix,
and keeps the pieces; this file does the same, in a few readable steps:

1. Basic tokenization exactly as the tokenizer will do it (`basic_tokenize`: lowercase and strip accents by
   default, split on whitespace and punctuation), then count how often each word occurs.
2. Start every word as characters: ``hello`` → ``h ##e ##l ##l ##o``. The vocabulary starts as the five special
   tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0–4, so ``[PAD]`` is 0 as BERT's configs expect) and every
   character piece seen (``h`` for a word-initial character, ``##e`` for a later one), most frequent first.
3. Repeatedly merge the adjacent pair of pieces that occurs most often (counted over words, weighted by their
   frequency): ``h + ##e`` → ``he``, ``##l + ##o`` → ``##lo``. Each merge adds one piece; frequent whole words
   appear once all their pieces have merged. Ties go to the pair that sorts first, so training is deterministic.
   Stop at ``vocab_size`` tokens, or when no pair occurs ``min_frequency`` times.

The pair counts are updated incrementally (only the words that contain the merged pair are re-counted), which
keeps a 1 MB corpus to seconds. Greedy longest-match WordPiece is not BPE, so a word may be cut differently from
how its merges built it, but every character seen in training is in the vocabulary, so only characters never seen
become ``[UNK]``.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from models.tokenizers.wordpiece import CONTINUATION_PREFIX, SPECIAL_TOKENS, WordPieceTokenizer, basic_tokenize
from train.cli import USER_ERRORS, CommandError, OneLineErrorParser, add_flag, settings_flags
from train.corpus import read_text_file
from train.settings import ANY, BOOL, POSITIVE, at_least, setting

Pair = tuple[str, str]


def count_words(texts: str | Iterable[str], lowercase: bool = True) -> Counter:
    """Word → count, after the tokenizer's basic tokenization (so the pieces learned are the pieces it will see)."""
    counts: Counter = Counter()
    for text in [texts] if isinstance(texts, str) else texts:
        for line in text.split("\n"):
            counts.update(basic_tokenize(line, lowercase, never_split=SPECIAL_TOKENS))
    return counts


def initial_pieces(word: str) -> list[str]:
    """A word as character pieces, later characters with the continuation prefix: "the" → t ##h ##e."""
    return [word[0], *(CONTINUATION_PREFIX + char for char in word[1:])]


def merge_pieces(first: str, second: str) -> str:
    """The piece two adjacent pieces make: t + ##h → th, ##h + ##e → ##he."""
    return first + second.removeprefix(CONTINUATION_PREFIX)


def _pairs(pieces: list[str]) -> Counter:
    return Counter(zip(pieces, pieces[1:]))


def _apply_merge(pieces: list[str], pair: Pair) -> list[str]:
    """Merge every occurrence of `pair` in one word's pieces, left to right."""
    merged, index = [], 0
    while index < len(pieces):
        if index + 1 < len(pieces) and (pieces[index], pieces[index + 1]) == pair:
            merged.append(merge_pieces(*pair))
            index += 2
        else:
            merged.append(pieces[index])
            index += 1
    return merged


class _PairCounts:
    """Pair counts over all words (weighted by word frequency), and which words hold each pair."""

    def __init__(self, words: list[list[str]], frequencies: list[int]):
        self.words, self.frequencies = words, frequencies
        self.counts: Counter = Counter()
        self.holders: defaultdict[Pair, set[int]] = defaultdict(set)
        for index in range(len(words)):
            self._add(index, sign=1)

    def _add(self, index: int, sign: int) -> None:
        for pair, times in _pairs(self.words[index]).items():
            self.counts[pair] += sign * times * self.frequencies[index]
            if sign > 0:
                self.holders[pair].add(index)

    def best(self) -> tuple[Pair, int] | None:
        """The most frequent pair (ties: the smallest pair), or None when no pair is left."""
        if not self.counts:
            return None
        pair = min(self.counts, key=lambda candidate: (-self.counts[candidate], candidate))
        return pair, self.counts[pair]

    def merge(self, pair: Pair) -> None:
        """Merge `pair` in every word that holds it, re-counting only those words."""
        for index in self.holders.pop(pair, ()):
            self._add(index, sign=-1)
            self.words[index] = _apply_merge(self.words[index], pair)
            self._add(index, sign=1)
        for stale in [p for p, count in self.counts.items() if count <= 0]:
            del self.counts[stale]


def train_wordpiece(texts: str | Iterable[str], vocab_size: int, lowercase: bool = True,
                    min_frequency: int = 2) -> list[str]:
    """The tokens of a learned WordPiece vocabulary in id order: specials, characters, then merged pieces.

    Raises ValueError when `vocab_size` cannot hold the special tokens and every character of the text."""
    word_counts = count_words(texts, lowercase)
    words = sorted(word_counts)
    pieces = [initial_pieces(word) for word in words]
    characters: Counter = Counter()
    for word_pieces, word in zip(pieces, words):
        for piece in word_pieces:
            characters[piece] += word_counts[word]
    vocab = [*SPECIAL_TOKENS, *sorted(characters, key=lambda piece: (-characters[piece], piece))]
    if vocab_size < len(vocab):
        raise ValueError(f"--vocab-size {vocab_size} is smaller than the {len(SPECIAL_TOKENS)} special tokens plus "
                         f"the {len(characters)} character pieces of the text; use at least {len(vocab)}")
    known = set(vocab)
    pair_counts = _PairCounts(pieces, [word_counts[word] for word in words])
    while len(vocab) < vocab_size:
        best = pair_counts.best()
        if best is None or best[1] < min_frequency:
            break
        pair_counts.merge(best[0])
        new_piece = merge_pieces(*best[0])
        if new_piece not in known:
            known.add(new_piece)
            vocab.append(new_piece)
    return vocab


def train_tokenizer(texts: str | Iterable[str], vocab_size: int, lowercase: bool = True,
                    min_frequency: int = 2) -> WordPieceTokenizer:
    """A WordPieceTokenizer over a vocabulary learned from `texts` (save it with `save_pretrained`)."""
    return WordPieceTokenizer(train_wordpiece(texts, vocab_size, lowercase, min_frequency), lowercase=lowercase)


@dataclass
class WordPieceSettings:
    """The flags of `python -m train.wordpiece_trainer`."""

    data: str = setting(None, ANY, "a UTF-8 text file")
    vocab_size: int = setting(2000, at_least(len(SPECIAL_TOKENS) + 1), "tokens in the vocabulary, specials included")
    min_frequency: int = setting(2, POSITIVE, "stop when the best pair is rarer than this")
    cased: bool = setting(False, BOOL, "keep case and accents (default: lowercase)")


def main(argv: list[str] | None = None) -> int:
    """Learn a vocabulary from --data and write <out>/vocab.txt and tokenizer_config.json (never over another
    vocabulary unless --overwrite)."""
    parser = OneLineErrorParser(prog="python -m train.wordpiece_trainer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for vocab.txt and tokenizer_config.json")
    parser.add_argument("--overwrite", action="store_true", help="replace a vocabulary already in --out")
    for flag in settings_flags(WordPieceSettings, "task").values():
        add_flag(parser, flag)
    args = parser.parse_args(argv)
    defaults = WordPieceSettings()
    settings = {name: getattr(defaults, name) if value is None else value for name, value in vars(args).items()}
    out = Path(args.out)
    try:
        if settings["data"] is None:
            raise CommandError("--data is required: the text to learn the vocabulary from")
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} is a file, not a directory")
        if (out / "vocab.txt").exists() and not args.overwrite:
            raise CommandError(f"--out {out} already holds a vocab.txt; replace it with --overwrite or choose "
                               "another --out")
        text = read_text_file(settings["data"])
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        tokenizer = train_tokenizer(text, settings["vocab_size"], not settings["cased"], settings["min_frequency"])
    except ValueError as error:  # --vocab-size below the text's characters: the message names the flag
        print(f"error: {error}", file=sys.stderr)
        return 2
    tokenizer.save_pretrained(out)
    print(f"wrote {out / 'vocab.txt'} ({tokenizer.vocab_size} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
