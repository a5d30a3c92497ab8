"""What every tokenizer here shares: checking ids against the vocabulary and finding special tokens in text."""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator, Sequence
from typing import SupportsIndex


def check_id(token_id: SupportsIndex, vocab_size: int) -> int:
    """``token_id`` as an int; ValueError naming the id and the vocabulary size if it is out of range."""
    index = operator.index(token_id)
    if not 0 <= index < vocab_size:
        raise ValueError(f"token id {index} is out of range for vocab_size={vocab_size}")
    return index


def special_splitter(special_tokens: Sequence[str]) -> re.Pattern[str] | None:
    """A pattern that finds special tokens in text, leftmost and then longest first (as Hugging Face does)."""
    if not special_tokens:
        return None
    by_length = sorted(special_tokens, key=len, reverse=True)
    return re.compile("|".join(re.escape(token) for token in by_length))


def split_special(text: str, splitter: re.Pattern[str] | None) -> Iterator[tuple[str, bool]]:
    """Yield ``(piece, is_special)`` pieces of ``text``: special tokens typed in text, and the plain text between."""
    position = 0
    if splitter is not None:
        for match in splitter.finditer(text):
            if match.start() > position:
                yield text[position:match.start()], False
            yield match.group(), True
            position = match.end()
    if position < len(text):
        yield text[position:], False
