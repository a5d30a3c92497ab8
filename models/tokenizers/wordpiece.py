"""WordPiece (BERT's tokenizer): text to ``[CLS] ... [SEP]`` ids from a ``vocab.txt``, as Hugging Face's BertTokenizer.

BERT (Devlin et al. 2019, section 3) reads text cut into word pieces (Wu et al. 2016) by Google's ``tokenization.py``;
Hugging Face's Python ``BertTokenizer`` (``BertTokenizerLegacy`` in transformers 5.x) is the same algorithm with one
addition, NFC normalization. The steps, in order:

1. Special tokens typed in the text (``[MASK]``, ``[SEP]``, ...) are cut out first and each stays one token.
2. Basic tokenization (``basic_tokenize``): drop U+FFFD and control characters (tab, newline and carriage return
   are whitespace, not control); put spaces around CJK ideographs, so each becomes a word; NFC-normalize; split on
   whitespace (Python's ``str.split``, as Hugging Face: Unicode spaces, and also U+2028/U+2029); if the vocabulary is
   uncased, lowercase each word and strip its accents (NFD, then drop the combining marks); split off every
   punctuation character as a word of its own.
3. WordPiece (``WordPieceTokenizer.word_pieces``): greedy longest-match-first against the vocabulary, the pieces after
   the first written with ``##``; a word that cannot be covered, or is longer than ``max_input_chars_per_word``
   characters, becomes one ``[UNK]``.
4. ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, with token type 0 up to the first ``[SEP]`` and 1 after it.

A checkpoint directory carries ``vocab.txt`` (one token per line, the line number is the id) and, in Hugging Face's
layout, ``tokenizer_config.json`` with ``do_lower_case``. Differences from Hugging Face: an unknown token or an id
out of range raises ValueError instead of mapping to ``[UNK]``; a vocabulary that repeats a token or lacks one of
the five special tokens is rejected; ``decode`` does not apply ``clean_up_tokenization_spaces``.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import SupportsIndex

import numpy as np

from models.tokenizers.common import check_id, special_splitter, split_special
from tinytensor.io import FileFormatError, atomic_write_text, check_type, file_errors, read_json_fields, read_text

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
CONTINUATION_PREFIX = "##"
VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


# ---- basic tokenization ------------------------------------------------------------------------------------------
def _is_control(char: str) -> bool:
    """A character of a Unicode "Other" category (Cc, Cf, ...), except tab, newline and carriage return."""
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    """Unicode punctuation (P*) or any ASCII character that is not a letter, digit or space (``$``, ``^``, ...)."""
    code = ord(char)
    return 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126 \
        or unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    """A CJK ideograph (Chinese characters and their Japanese and Korean uses; not kana, not Hangul)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def clean_text(text: str) -> str:
    """Drop U+FFFD and control characters (NUL, zero-width space, ...): a word they sit inside stays one word."""
    return "".join(char for char in text if char != "\ufffd" and not _is_control(char))


def _strip_accents(word: str) -> str:
    """Decompose (NFD) and drop the combining marks (category Mn): "résumé" -> "resume"."""
    return "".join(char for char in unicodedata.normalize("NFD", word) if unicodedata.category(char) != "Mn")


def _split_on_punctuation(word: str) -> list[str]:
    """Split a word into runs of non-punctuation and single punctuation characters: "don't" -> don ' t."""
    pieces: list[str] = []
    run = ""
    for char in word:
        if _is_punctuation(char):
            pieces += [run, char] if run else [char]
            run = ""
        else:
            run += char
    return pieces + [run] if run else pieces


def basic_tokenize(text: str, lowercase: bool, never_split: Iterable[str] = ()) -> list[str]:
    """BERT's basic tokenization: clean, space out CJK ideographs, NFC, split on whitespace and punctuation.

    With ``lowercase`` each word is lowercased and its accents stripped (BERT's uncased vocabularies). Words in
    ``never_split`` (the special tokens) are kept whole and unchanged.
    """
    spaced = "".join(f" {char} " if _is_cjk(char) else char for char in clean_text(text))
    never_split = frozenset(never_split)
    words: list[str] = []
    for word in unicodedata.normalize("NFC", spaced).split():
        if word in never_split:
            words.append(word)
            continue
        if lowercase:
            word = _strip_accents(word.lower())
        words += _split_on_punctuation(word)
    return " ".join(words).split()


def truncate_longest_first(first: list[int], second: list[int], n_remove: int) -> tuple[list[int], list[int]]:
    """Hugging Face's "longest_first": drop ``n_remove`` ids from the ends, each from the longer list (the second on
    a tie), computed in closed form: first the length gap, then the rest shared, the second taking the odd one."""
    gap = min(abs(len(first) - len(second)), n_remove)
    shared = n_remove - gap
    from_first = shared // 2 + (gap if len(first) > len(second) else 0)
    from_second = n_remove - from_first
    return first[:len(first) - from_first], second[:len(second) - from_second]


# ---- the tokenizer -----------------------------------------------------------------------------------------------
class WordPieceTokenizer:
    """BERT's WordPiece tokenizer, giving the ids of Hugging Face's Python ``BertTokenizer`` for the same vocabulary.

    ``lowercase=True`` is for uncased vocabularies (lowercase and strip accents before WordPiece), ``False`` for
    cased ones. Calling the tokenizer on a batch gives ``input_ids``, ``token_type_ids`` and ``attention_mask``
    as int64 arrays ``[B, T]``, padded with ``[PAD]`` on the right and truncated "longest_first".
    """

    def __init__(self, vocab: Sequence[str], lowercase: bool = True, max_input_chars_per_word: int = 100) -> None:
        """Build a tokenizer from the tokens in id order (the lines of ``vocab.txt``).

        Raises ValueError if a token repeats (ids would be ambiguous) or a special token is missing.
        """
        self._id_to_token = list(vocab)
        self._vocab = _checked_vocab(self._id_to_token)
        self.lowercase = lowercase
        self.max_input_chars_per_word = max_input_chars_per_word
        self._longest_token = max(map(len, self._id_to_token))
        self._special_ids = frozenset(self._vocab[token] for token in SPECIAL_TOKENS)
        self._special_splitter = special_splitter(SPECIAL_TOKENS)

    @classmethod
    def from_vocab(cls, vocab_txt: str | Path, lowercase: bool = True) -> WordPieceTokenizer:
        """Load a BERT ``vocab.txt``: one token per line, the line number (from 0) is its id. FileFormatError
        names a file that is not UTF-8, repeats a token or lacks a special token."""
        lines = read_text(vocab_txt).split("\n")
        with file_errors(vocab_txt, FileFormatError):
            return cls(lines[:-1] if lines[-1] == "" else lines, lowercase)

    @classmethod
    def from_pretrained(cls, directory: str | Path, lowercase: bool | None = None) -> WordPieceTokenizer:
        """Load ``directory/vocab.txt``; ``lowercase=None`` reads ``do_lower_case`` from ``tokenizer_config.json``
        when the directory has one, and otherwise means True (Hugging Face's default)."""
        directory = Path(directory)
        if lowercase is None:
            config_path = directory / CONFIG_FILE
            config = read_json_fields(config_path, {"do_lower_case": bool}) if config_path.is_file() else {}
            lowercase = config.get("do_lower_case", True)
        return cls.from_vocab(directory / VOCAB_FILE, lowercase)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``vocab.txt`` and a ``tokenizer_config.json`` with ``do_lower_case`` into ``directory``, atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / VOCAB_FILE, "".join(f"{token}\n" for token in self._id_to_token))
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.lowercase}
        atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")

    def to_dict(self) -> dict:
        """JSON-ready description (a training run keeps its tokenizer inside its checkpoint record)."""
        return {"type": "wordpiece", "vocab": list(self._id_to_token), "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, data: dict) -> WordPieceTokenizer:
        """Rebuild a tokenizer from `to_dict` output; ValueError if it is not one."""
        if not isinstance(data, dict) or data.get("type") != "wordpiece":
            raise ValueError("expected a WordPiece tokenizer record ({'type': 'wordpiece', ...})")
        return cls(check_type(data.get("vocab"), list[str], "vocab"),
                   lowercase=check_type(data.get("lowercase"), bool, "lowercase"))

    @property
    def vocab_size(self) -> int:
        """Number of tokens, special tokens included."""
        return len(self._id_to_token)

    @property
    def pad_token_id(self) -> int:
        """The id of ``[PAD]``."""
        return self._vocab[PAD]

    def __len__(self) -> int:
        """Same as ``vocab_size``."""
        return self.vocab_size

    def __repr__(self) -> str:
        """Short description showing the size and casing."""
        return f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase})"

    def token_to_id(self, token: str) -> int:
        """The id of a vocabulary token; ValueError if it is not in the vocabulary."""
        if token not in self._vocab:
            raise ValueError(f"token {token!r} is not in the vocabulary (vocab_size={self.vocab_size})")
        return self._vocab[token]

    def id_to_token(self, token_id: SupportsIndex) -> str:
        """The token of an id; ValueError naming the id and the vocab size if it is out of range."""
        return self._id_to_token[check_id(token_id, self.vocab_size)]

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text``, without ``[CLS]``/``[SEP]``; special tokens typed in text stay whole."""
        tokens: list[str] = []
        for piece, is_special in split_special(text, self._special_splitter):
            if is_special:
                tokens.append(piece)
                continue
            for word in basic_tokenize(piece, self.lowercase, never_split=SPECIAL_TOKENS):
                tokens += self.word_pieces(word)  # a special token that cleaning revealed is one whole piece
        return tokens

    def word_pieces(self, word: str) -> list[str]:
        """Greedy longest-match-first WordPiece of one word: "unaffable" -> un ##aff ##able, or ``[UNK]``."""
        if len(word) > self.max_input_chars_per_word:
            return [UNK]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            prefix = CONTINUATION_PREFIX if start else ""
            end = min(len(word), start + self._longest_token)
            while end > start and prefix + word[start:end] not in self._vocab:
                end -= 1
            if end == start:
                return [UNK]
            pieces.append(prefix + word[start:end])
            start = end
        return pieces

    def encode(self, text: str, text_pair: str | None = None) -> list[int]:
        """``[CLS] text [SEP]`` ids, or ``[CLS] text [SEP] text_pair [SEP]`` for a pair."""
        return self._with_special_tokens(self._ids(text), None if text_pair is None else self._ids(text_pair))[0]

    def __call__(self, text: str | Sequence[str], text_pair: str | Sequence[str] | None = None,
                 padding: bool | str = False, truncation: bool | str = False,
                 max_length: int | None = None) -> dict[str, np.ndarray]:
        """Encode a batch (or one string, as a batch of one) into int64 arrays ``[B, T]``.

        Returns ``input_ids``, ``token_type_ids`` and ``attention_mask`` (1 = token, 0 = pad). ``padding``: False
        (all sequences must then have the same length), True or "longest" (pad to the longest), or "max_length".
        ``truncation``: False, or True / "longest_first" (cut each sequence, or pair, down to ``max_length``).
        """
        texts = _as_list(text)
        pairs = [None] * len(texts) if text_pair is None else _as_list(text_pair)
        if len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} text pairs")
        truncate_to = _truncation_length(truncation, max_length)
        encoded = [self._encode_for_batch(first, second, truncate_to) for first, second in zip(texts, pairs)]
        return self._pad(encoded, _padding_length(padding, max_length, encoded))

    def decode(self, ids: Iterable[SupportsIndex], skip_special_tokens: bool = False) -> str:
        """Text of ids: tokens joined by spaces, each ``##`` piece glued to the one before (HF's
        ``convert_tokens_to_string``). The lowercasing, accents and spacing that tokenization removed do not return.
        """
        checked = (check_id(token_id, self.vocab_size) for token_id in ids)
        tokens = [self._id_to_token[i] for i in checked if not (skip_special_tokens and i in self._special_ids)]
        return " ".join(tokens).replace(f" {CONTINUATION_PREFIX}", "").strip()

    def _ids(self, text: str) -> list[int]:
        """Ids of ``text``'s word pieces, without special tokens added."""
        return [self._vocab[token] for token in self.tokenize(text)]

    def _with_special_tokens(self, first: list[int], second: list[int] | None) -> tuple[list[int], list[int]]:
        """``[CLS] first [SEP] (second [SEP])`` and its token type ids (0 through the first ``[SEP]``, then 1)."""
        cls_id, sep_id = self._vocab[CLS], self._vocab[SEP]
        ids = [cls_id, *first, sep_id]
        types = [0] * len(ids)
        if second is not None:
            ids += [*second, sep_id]
            types += [1] * (len(second) + 1)
        return ids, types

    def _encode_for_batch(self, text: str, text_pair: str | None,
                          truncate_to: int | None) -> tuple[list[int], list[int]]:
        """Ids and token type ids of one example, truncated "longest_first" to ``truncate_to`` ids if given."""
        first = self._ids(text)
        second = None if text_pair is None else self._ids(text_pair)
        n_special = 2 if second is None else 3
        if truncate_to is not None:
            if truncate_to < n_special:
                raise ValueError(f"max_length={truncate_to} leaves no room for the {n_special} special tokens")
            n_remove = max(0, len(first) + len(second or []) + n_special - truncate_to)
            if second is None:
                first = first[:len(first) - n_remove]
            else:
                first, second = truncate_longest_first(first, second, n_remove)
        return self._with_special_tokens(first, second)

    def _pad(self, encoded: list[tuple[list[int], list[int]]], length: int | None) -> dict[str, np.ndarray]:
        """Pad each example on the right to ``length`` (None: no padding) and stack into int64 arrays ``[B, T]``."""
        lengths = sorted({len(ids) if length is None else max(length, len(ids)) for ids, _ in encoded})
        if len(lengths) > 1:
            raise ValueError(f"sequences have different lengths {lengths}; pass padding=True or truncate them")
        width = lengths[0] if lengths else 0
        batch = {key: np.zeros((len(encoded), width), dtype=np.int64)
                 for key in ("input_ids", "token_type_ids", "attention_mask")}
        batch["input_ids"][:] = self.pad_token_id
        for row, (ids, types) in enumerate(encoded):
            batch["input_ids"][row, :len(ids)] = ids
            batch["token_type_ids"][row, :len(ids)] = types
            batch["attention_mask"][row, :len(ids)] = 1
        return batch


def _checked_vocab(id_to_token: list[str]) -> dict[str, int]:
    """Token -> id; ValueError naming a repeated token (with both ids) or the special tokens that are missing."""
    vocab: dict[str, int] = {}
    for token_id, token in enumerate(id_to_token):
        if token in vocab:
            raise ValueError(f"vocabulary repeats token {token!r} (ids {vocab[token]} and {token_id})")
        vocab[token] = token_id
    missing = [token for token in SPECIAL_TOKENS if token not in vocab]
    if missing:
        raise ValueError(f"vocabulary lacks the special tokens {missing!r}")
    return vocab


def _as_list(texts: str | Sequence[str]) -> list[str]:
    """One string as a batch of one, or the batch's strings."""
    return [texts] if isinstance(texts, str) else list(texts)


def _truncation_length(truncation: bool | str, max_length: int | None) -> int | None:
    """The length to truncate to, or None; ValueError for a strategy other than "longest_first" or no max_length."""
    if not truncation:
        return None
    if truncation not in (True, "longest_first"):
        raise ValueError(f"truncation={truncation!r} is not supported; use True or 'longest_first'")
    if max_length is None:
        raise ValueError("truncation needs max_length")
    return max_length


def _padding_length(padding: bool | str, max_length: int | None,
                    encoded: list[tuple[list[int], list[int]]]) -> int | None:
    """The length to pad to: None (no padding), the longest sequence, or ``max_length``."""
    if not padding:
        return None
    if padding in (True, "longest"):
        return max((len(ids) for ids, _ in encoded), default=0)
    if padding != "max_length":
        raise ValueError(f"padding={padding!r} is not supported; use True, 'longest' or 'max_length'")
    if max_length is None:
        raise ValueError("padding='max_length' needs max_length")
    return max_length
