"""Byte-level BPE (GPT-2's tokenizer): encode/decode from `vocab.json` + `merges.txt`, and learn merges from text."""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import SupportsIndex

from models.tokenizers.common import check_id, special_splitter, split_special
from tinytensor.io import FileFormatError, atomic_write_text, check_type, file_errors, read_json, read_text


# ---- byte-level BPE (GPT-2) --------------------------------------------------------------------------------------
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's pre-tokenization regex (for the third-party ``regex`` module), kept here as the specification.

Python's ``re`` has no ``\\p{..}`` classes, so ``_pretokenize_pattern`` spells out the same alternation with explicit
classes: ``\\p{L}`` = Unicode categories L* (``unicodedata.category``), ``\\p{N}`` = N*, and ``\\s`` = the Unicode
``White_Space`` property (``_WHITE_SPACE``), which is what the ``regex`` module and the Oniguruma engine of Hugging Face
``tokenizers`` use. (Python's own ``str.isspace`` differs: it also counts U+001C..U+001F.) Characters assigned after
Python's Unicode database (``unicodedata.unidata_version``) are neither letters nor numbers here.
"""

_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
DEFAULT_SPECIAL_TOKEN = "<|endoftext|>"
_MERGES_HEADER = "#version: 0.2"
_WORD_CACHE_LIMIT = 100_000


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters.

    BPE works on strings, and a vocabulary file must not hold control characters or bare spaces, so each byte is
    shown as a visible character: printable Latin-1 bytes stand for themselves and the other 68 bytes (controls,
    space, soft hyphen) take the characters from U+0100 up, in byte order. The space becomes ``Ġ``, the newline ``Ċ``.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {byte: chr(byte) for byte in printable}
    others = [byte for byte in range(256) if byte not in mapping]
    mapping.update({byte: chr(256 + n) for n, byte in enumerate(others)})
    return dict(sorted(mapping.items()))


_BYTE_ENCODER = bytes_to_unicode()
_BYTE_DECODER = {char: byte for byte, char in _BYTE_ENCODER.items()}


def _category_class(major: str) -> str:
    """Ranges, for use inside ``[...]``, of every code point whose Unicode category starts with ``major``."""
    ranges: list[str] = []
    start = None
    for code in range(sys.maxunicode + 2):
        inside = code <= sys.maxunicode and unicodedata.category(chr(code))[0] == major
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            ranges.append(f"\\U{start:08x}-\\U{code - 1:08x}")
            start = None
    return "".join(ranges)


@functools.cache
def _pretokenize_pattern() -> re.Pattern[str]:
    """``GPT2_SPLIT_PATTERN`` for Python's ``re`` (built once, on first use: scanning Unicode takes ~0.2 s)."""
    letter, number, space = _category_class("L"), _category_class("N"), _WHITE_SPACE
    return re.compile(
        f"'s|'t|'re|'ve|'m|'ll|'d| ?[{letter}]+| ?[{number}]+| ?[^{space}{letter}{number}]+"
        f"|[{space}]+(?![^{space}])|[{space}]+"
    )


def pretokenize(text: str) -> list[str]:
    """Split text into GPT-2 pre-tokens (words with their leading space, numbers, punctuation runs, whitespace).

    BPE merges never cross these boundaries. The pieces concatenate back to ``text``.
    """
    return _pretokenize_pattern().findall(text)


def _byte_level(word: str) -> str:
    """The UTF-8 bytes of ``word``, each shown as its ``bytes_to_unicode`` character."""
    return "".join(_BYTE_ENCODER[byte] for byte in word.encode("utf-8"))


def _apply_merges(symbols: list[str], merge_ranks: Mapping[tuple[str, str], int]) -> list[str]:
    """BPE on one pre-token: repeatedly merge the adjacent pair of lowest merge rank, the leftmost one first.

    This is the order of Hugging Face's ``Word::merge_all``: a heap of candidate pairs over a linked list of symbols,
    so a long pre-token costs O(n log n). For merges learned by a BPE trainer it gives the same result as GPT-2's
    ``bpe()``, which merges every occurrence of the best pair at once.
    """
    size = len(symbols)
    parts = list(symbols)
    next_index = list(range(1, size + 1))
    prev_index = list(range(-1, size - 1))
    alive = [True] * size
    heap: list[tuple[int, int, str]] = []  # (rank, position of the left symbol, merged string)

    def queue(left: int, right: int) -> None:
        """Make the pair (left, right) a candidate if both symbols exist and the pair has a merge rank."""
        if left >= 0 and right < size and (parts[left], parts[right]) in merge_ranks:
            heapq.heappush(heap, (merge_ranks[parts[left], parts[right]], left, parts[left] + parts[right]))

    for left in range(size - 1):
        queue(left, left + 1)
    while heap:
        _, left, merged = heapq.heappop(heap)
        right = next_index[left]
        if not alive[left] or right >= size or parts[left] + parts[right] != merged \
                or (parts[left], parts[right]) not in merge_ranks:
            continue  # an expired candidate: one of its symbols was merged since it was queued
        parts[left] = merged
        alive[right] = False
        next_index[left] = next_index[right]
        if next_index[left] < size:
            prev_index[next_index[left]] = left
        queue(prev_index[left], left)
        queue(left, next_index[left])
    return [part for part, keep in zip(parts, alive) if keep]


class ByteLevelBPETokenizer:
    """GPT-2's byte-level BPE tokenizer (Radford et al. 2019, section 2.2), compatible with Hugging Face files.

    Text is split into pre-tokens by ``GPT2_SPLIT_PATTERN``; each pre-token's UTF-8 bytes are written with
    ``bytes_to_unicode`` characters and merged by the ranked pairs of ``merges.txt``; ``vocab.json`` maps the resulting
    strings to ids. Every byte is in the vocabulary, so any string can be encoded and there is no unknown token.
    Special tokens (GPT-2's ``<|endoftext|>``) typed in text are never split: each stays one id.
    """

    def __init__(self, vocab: Mapping[str, int], merges: Sequence[tuple[str, str]],
                 special_tokens: Sequence[str] | None = None) -> None:
        """Build a tokenizer from a vocabulary (token → id), ranked merges, and the special tokens.

        ``special_tokens=None`` means ``<|endoftext|>`` if the vocabulary has it, else none. Raises ValueError if
        the ids are not exactly ``0..len(vocab)-1``, a byte character is missing, a merge uses or makes a token that
        is not in the vocabulary, or a special token is not in the vocabulary.
        """
        self._id_to_token = _checked_id_to_token(vocab)
        self._vocab = dict(vocab)
        self._merges = [tuple(pair) for pair in merges]
        _check_merges(self._merges, self._vocab)
        self._merge_ranks = {pair: rank for rank, pair in enumerate(self._merges)}
        self._special_tokens = _checked_special_tokens(special_tokens, self._vocab)
        self._splitter = special_splitter(self._special_tokens)
        self._id_to_bytes = [_token_bytes(token, token in self._special_tokens) for token in self._id_to_token]
        self._word_cache: dict[str, list[int]] = {}

    @classmethod
    def from_files(cls, vocab_json: str | Path, merges_txt: str | Path,
                   special_tokens: Sequence[str] | None = None) -> ByteLevelBPETokenizer:
        """Load GPT-2 / Hugging Face ``vocab.json`` and ``merges.txt``.

        FileNotFoundError names a missing file; FileFormatError names a file that is not UTF-8, JSON that does not
        parse or is not an object of token → id, a merges line that is not two tokens, or files that do not fit
        together (the checks of ``__init__``)."""
        vocab = read_json(vocab_json)
        with file_errors(vocab_json, FileFormatError):
            vocab = check_type(vocab, dict[str, int], "vocabulary")
            _checked_id_to_token(vocab)
        merges = _parse_merges(read_text(merges_txt), merges_txt)
        with file_errors(merges_txt, FileFormatError):
            return cls(vocab, merges, special_tokens)

    @classmethod
    def from_pretrained(cls, directory: str | Path,
                        special_tokens: Sequence[str] | None = None) -> ByteLevelBPETokenizer:
        """Load ``directory/vocab.json`` and ``directory/merges.txt``."""
        directory = Path(directory)
        return cls.from_files(directory / "vocab.json", directory / "merges.txt", special_tokens)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``vocab.json`` and ``merges.txt`` into ``directory``, each atomically, byte for byte as HF does.

        That is: compact UTF-8 JSON ordered by id, and a ``#version: 0.2`` line before one merge per line.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab = {token: i for i, token in enumerate(self._id_to_token)}
        atomic_write_text(directory / "vocab.json", json.dumps(vocab, ensure_ascii=False, separators=(",", ":")))
        lines = [_MERGES_HEADER, *(f"{first} {second}" for first, second in self._merges)]
        atomic_write_text(directory / "merges.txt", "\n".join(lines) + "\n")

    def to_dict(self) -> dict:
        """JSON-ready description (a training run keeps its tokenizer inside its checkpoint record)."""
        return {"type": "byte_level_bpe", "vocab": list(self._id_to_token), "merges": [list(m) for m in self._merges],
                "special_tokens": list(self._special_tokens)}

    @classmethod
    def from_dict(cls, data: dict) -> ByteLevelBPETokenizer:
        """Rebuild a tokenizer from `to_dict` output; ValueError if it is not one."""
        if not isinstance(data, dict) or data.get("type") != "byte_level_bpe":
            raise ValueError("expected a byte-level BPE tokenizer record ({'type': 'byte_level_bpe', ...})")
        vocab = check_type(data.get("vocab"), list[str], "vocab")
        merges = check_type(data.get("merges"), list[list[str]], "merges")
        special_tokens = check_type(data.get("special_tokens"), list[str], "special_tokens")
        return cls({token: index for index, token in enumerate(vocab)}, [tuple(pair) for pair in merges],
                   special_tokens)

    @property
    def vocab_size(self) -> int:
        """Number of tokens, special tokens included."""
        return len(self._id_to_token)

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The special tokens, which are matched in text before pre-tokenization."""
        return self._special_tokens

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The merges, lowest rank (applied first) first (a copy)."""
        return list(self._merges)

    def __len__(self) -> int:
        """Same as ``vocab_size``."""
        return self.vocab_size

    def __repr__(self) -> str:
        """Short description showing the sizes."""
        return f"ByteLevelBPETokenizer(vocab_size={self.vocab_size}, merges={len(self._merges)})"

    def token_to_id(self, token: str) -> int:
        """The id of a vocabulary string (bytes written as ``bytes_to_unicode`` characters, e.g. ``"Ġthe"``)."""
        if token not in self._vocab:
            raise ValueError(f"token {token!r} is not in the vocabulary (vocab_size={self.vocab_size})")
        return self._vocab[token]

    def id_to_token(self, token_id: SupportsIndex) -> str:
        """The vocabulary string of an id; ValueError naming the id and the vocab size if it is out of range."""
        return self._id_to_token[check_id(token_id, self.vocab_size)]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: special tokens as one id each, the rest pre-tokenized and merged."""
        ids: list[int] = []
        for piece, is_special in split_special(text, self._splitter):
            if is_special:
                ids.append(self._vocab[piece])
            else:
                for word in pretokenize(piece):
                    ids.extend(self._encode_word(word))
        return ids

    def decode(self, ids: Iterable[SupportsIndex]) -> str:
        """Text of ids (a list, any iterable of ints, or a NumPy int array); special tokens are kept.

        The tokens' bytes are joined and decoded as UTF-8 with ``errors="replace"``, as GPT-2 does: an arbitrary id
        sequence may cut a multi-byte character, and that shows as U+FFFD instead of raising.
        """
        data = b"".join(self._id_to_bytes[check_id(token_id, self.vocab_size)] for token_id in ids)
        return data.decode("utf-8", errors="replace")

    def _encode_word(self, word: str) -> list[int]:
        """Ids of one pre-token, cached because words repeat (the cache is emptied when it grows past a limit)."""
        cached = self._word_cache.get(word)
        if cached is None:
            symbols = _apply_merges(list(_byte_level(word)), self._merge_ranks)
            cached = [self._vocab[symbol] for symbol in symbols]
            if len(self._word_cache) >= _WORD_CACHE_LIMIT:
                self._word_cache.clear()
            self._word_cache[word] = cached
        return cached

    @classmethod
    def train(cls, text_or_iterable: str | Iterable[str], vocab_size: int, min_frequency: int = 2,
              special_tokens: Sequence[str] = (DEFAULT_SPECIAL_TOKEN,)) -> ByteLevelBPETokenizer:
        """Learn merges until there are ``vocab_size`` tokens or no pair occurs ``min_frequency`` times.

        A string is one sequence; an iterable yields sequences that are pre-tokenized separately (no pre-token
        crosses two of them). The vocabulary is the special tokens, then the 256 byte characters by code point, then
        one token per merge. Each step merges the most frequent pair; ties go to the pair whose (left id, right id)
        is smallest, which is the rule of Hugging Face's ``BpeTrainer``, so both learn the same merges from the same
        sequences. One difference: special tokens typed in the training text are left out of the counts, where
        Hugging Face counts each as one whole word and spends merges on its characters (``<|`` + ``endofte``...)
        that encoding never uses, since special tokens are matched before BPE.
        """
        special_tokens = tuple(dict.fromkeys(special_tokens))
        vocab = {token: i for i, token in enumerate((*special_tokens, *sorted(_BYTE_DECODER)))}
        if vocab_size < len(vocab):
            raise ValueError(f"vocab_size={vocab_size} is smaller than the {len(vocab)} special and byte tokens")
        texts = [text_or_iterable] if isinstance(text_or_iterable, str) else text_or_iterable
        word_counts = _count_words(texts, special_splitter(special_tokens))
        merges = _learn_merges(word_counts, vocab, vocab_size, min_frequency)
        return cls(vocab, merges, special_tokens)

    @classmethod
    def train_from_file(cls, path: str | Path, vocab_size: int, min_frequency: int = 2,
                        special_tokens: Sequence[str] = (DEFAULT_SPECIAL_TOKEN,)) -> ByteLevelBPETokenizer:
        """``train`` on a UTF-8 text file, one sequence per line (line ending included), as Hugging Face reads files."""
        with open(path, encoding="utf-8", newline="\n") as lines:
            return cls.train(lines, vocab_size, min_frequency, special_tokens)


def _checked_id_to_token(vocab: Mapping[str, int]) -> list[str]:
    """The tokens ordered by id; ValueError unless the ids are 0..n-1 and every byte character is a token."""
    id_to_token = sorted(vocab, key=vocab.__getitem__)
    if [vocab[token] for token in id_to_token] != list(range(len(vocab))):
        raise ValueError(f"vocabulary ids must be exactly 0..{len(vocab) - 1}, each used once")
    missing = [char for char in _BYTE_DECODER if char not in vocab]
    if missing:
        raise ValueError(f"vocabulary lacks {len(missing)} byte characters, e.g. {missing[0]!r}")
    return id_to_token


def _check_merges(merges: Sequence[tuple[str, str]], vocab: Mapping[str, int]) -> None:
    """ValueError naming the first merge whose parts or result are not in the vocabulary."""
    for rank, pair in enumerate(merges):
        if len(pair) != 2 or any(token not in vocab for token in (*pair, "".join(pair))):
            raise ValueError(f"merge {rank} {pair!r} uses or makes a token that is not in the vocabulary")


def _checked_special_tokens(special_tokens: Sequence[str] | None, vocab: Mapping[str, int]) -> tuple[str, ...]:
    """The special tokens to match in text; ``None`` means ``<|endoftext|>`` if the vocabulary has it."""
    if special_tokens is None:
        return (DEFAULT_SPECIAL_TOKEN,) if DEFAULT_SPECIAL_TOKEN in vocab else ()
    missing = [token for token in special_tokens if token not in vocab]
    if missing:
        raise ValueError(f"special tokens {missing!r} are not in the vocabulary")
    return tuple(dict.fromkeys(special_tokens))


def _token_bytes(token: str, is_special: bool) -> bytes:
    """The bytes a token decodes to: special tokens (and any token with non-byte characters) as their UTF-8."""
    if is_special or any(char not in _BYTE_DECODER for char in token):
        return token.encode("utf-8")
    return bytes(_BYTE_DECODER[char] for char in token)


def _parse_merges(text: str, source: str | Path) -> list[tuple[str, str]]:
    """Merges from ``merges.txt`` text: an optional ``#version`` line, then one ``left right`` pair per line."""
    lines = text.splitlines()
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = []
    for number, line in enumerate(lines, start=1):
        pair = tuple(line.split(" "))
        if len(pair) != 2:
            raise FileFormatError(source, f"merge {number} is not two tokens separated by one space: {line!r}")
        merges.append(pair)
    return merges


# ---- BPE training --------------------------------------------------------------------------------------------------
Pair = tuple[int, int]


def _count_words(texts: Iterable[str], splitter: re.Pattern[str] | None) -> Counter[str]:
    """How often each byte-level pre-token occurs in the texts (special tokens are skipped)."""
    counts: Counter[str] = Counter()
    for text in texts:
        for piece, is_special in split_special(text, splitter):
            if not is_special:
                counts.update(pretokenize(piece))
    return Counter({_byte_level(word): count for word, count in counts.items()})


def _learn_merges(word_counts: Mapping[str, int], vocab: dict[str, int], vocab_size: int,
                  min_frequency: int) -> list[tuple[str, str]]:
    """Hugging Face's ``BpeTrainer`` loop: merge the top pair of a max-heap keyed by (count, smallest ids first).

    Pair counts are updated incrementally: merging a pair only touches the words that hold it (each heap entry
    carries those word indices), so a step costs the occurrences it changes rather than a recount of the corpus.
    Heap entries whose count went stale are re-queued with the current count when they reach the top. ``vocab``
    (token → id) is extended in place.
    """
    id_to_token = list(vocab)
    words = [[vocab[char] for char in word] for word in word_counts]
    counts = list(word_counts.values())
    pair_counts: defaultdict[Pair, int] = defaultdict(int)
    where: defaultdict[Pair, set[int]] = defaultdict(set)
    for index, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += counts[index]
            where[pair].add(index)
    order = itertools.count()  # entries with equal count and pair pop in the order they were queued
    heap = [(-pair_counts[pair], pair, next(order), indices) for pair, indices in where.items()]
    heapq.heapify(heap)
    merges = []
    while len(vocab) < vocab_size and heap:
        negative_count, pair, _, indices = heapq.heappop(heap)
        count = pair_counts[pair]
        if -negative_count != count:
            heapq.heappush(heap, (-count, pair, next(order), indices))
            continue
        if count < max(1, min_frequency):
            break
        merged = id_to_token[pair[0]] + id_to_token[pair[1]]
        if merged not in vocab:
            vocab[merged] = len(id_to_token)
            id_to_token.append(merged)
        merges.append((id_to_token[pair[0]], id_to_token[pair[1]]))
        new_pairs = _merge_in_words(words, counts, indices, pair, vocab[merged], pair_counts)
        for new_pair, new_indices in new_pairs.items():
            if pair_counts[new_pair] > 0:
                heapq.heappush(heap, (-pair_counts[new_pair], new_pair, next(order), new_indices))
    return merges


def _merge_in_words(words: list[list[int]], counts: Sequence[int], indices: Iterable[int], pair: Pair,
                    new_id: int, pair_counts: defaultdict[Pair, int]) -> dict[Pair, set[int]]:
    """Replace ``pair`` by ``new_id`` in the given words, updating ``pair_counts`` for the neighbours it changes.

    Returns the pairs that gained occurrences (all contain ``new_id``) with the words where they did.
    """
    gained: defaultdict[Pair, set[int]] = defaultdict(set)
    for index in indices:
        for changed, change in _merge_in_word(words[index], pair, new_id):
            pair_counts[changed] += change * counts[index]
            if change > 0:
                gained[changed].add(index)
    return gained


def _merge_in_word(word: list[int], pair: Pair, new_id: int) -> list[tuple[Pair, int]]:
    """Merge ``pair`` left to right in ``word`` (in place); returns (neighbour pair, +1 or -1) for each change."""
    changes: list[tuple[Pair, int]] = []
    first, second = pair
    i = 0
    while i < len(word) - 1:
        if word[i] == first and word[i + 1] == second:
            if i > 0:
                changes += [((word[i - 1], first), -1), ((word[i - 1], new_id), 1)]
            word[i:i + 2] = [new_id]
            if i < len(word) - 1:
                changes += [((second, word[i + 1]), -1), ((new_id, word[i + 1]), 1)]
        i += 1
    return changes
