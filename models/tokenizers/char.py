"""Character-level tokenizer: one id per distinct character, as in the "Let's build GPT" lecture."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, SupportsIndex

from models.tokenizers.common import check_id
from tinytensor.io import ConfigError, atomic_write_text, check_type, file_errors, read_json


class CharTokenizer:
    """Character-level tokenizer: every character of the vocabulary is one token.

    Token ids are the positions of the characters in the vocabulary, as in
    Karpathy's "Let's build GPT" lecture (``stoi``/``itos``).
    """

    TYPE = "char"

    def __init__(self, chars: str | list[str]) -> None:
        """Build a tokenizer whose vocabulary is ``chars``, in the given order.

        Raises ValueError if the vocabulary is empty, holds an entry that is
        not exactly one character, or repeats a character, because any of
        these would make ids ambiguous.
        """
        itos = list(chars)
        if not itos:
            raise ValueError("CharTokenizer needs a non-empty vocabulary")
        for entry in itos:
            if not isinstance(entry, str) or len(entry) != 1:
                raise ValueError(
                    f"vocabulary entries must be single characters, got {entry!r}"
                )
        stoi = {ch: i for i, ch in enumerate(itos)}
        if len(stoi) != len(itos):
            repeated = sorted({ch for ch in itos if itos.count(ch) > 1})
            raise ValueError(f"vocabulary repeats characters: {repeated!r}")
        self._itos = itos
        self._stoi = stoi

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from the sorted set of characters in ``text``."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens (characters)."""
        return len(self._itos)

    @property
    def chars(self) -> list[str]:
        """The vocabulary, indexed by token id (a copy)."""
        return list(self._itos)

    def __len__(self) -> int:
        """Same as ``vocab_size``."""
        return self.vocab_size

    def __repr__(self) -> str:
        """Short description showing the vocabulary size."""
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        """Map each character of ``text`` to its id.

        Raises ValueError naming the first character that is not in the
        vocabulary and its position, so the user can find it in the data.
        """
        stoi = self._stoi
        try:
            return [stoi[ch] for ch in text]
        except KeyError:
            position, char = next(
                (i, ch) for i, ch in enumerate(text) if ch not in stoi
            )
            raise ValueError(
                f"character {char!r} at position {position} is not in the vocabulary "
                f"(vocab_size={self.vocab_size})"
            ) from None

    def decode(self, ids: Iterable[SupportsIndex]) -> str:
        """Map ids (a list, any iterable of ints, or a NumPy int array) back to text.

        Raises ValueError for an id outside ``[0, vocab_size)``; negative ids
        are rejected rather than silently indexing from the end.
        """
        return "".join(self._itos[check_id(token_id, self.vocab_size)] for token_id in ids)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the tokenizer."""
        return {"type": self.TYPE, "chars": list(self._itos)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        """Rebuild a tokenizer from ``to_dict`` output; ValueError if it is not one."""
        if not isinstance(data, dict) or data.get("type") != cls.TYPE:
            found = data.get("type") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"expected a tokenizer of type {cls.TYPE!r}, got {found!r}")
        return cls(check_type(data.get("chars"), list[str], "chars"))

    def save(self, path: str | Path) -> None:
        """Save as JSON to ``path``, written atomically."""
        atomic_write_text(Path(path), json.dumps(self.to_dict()) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        """Load a tokenizer saved with ``save``; ConfigError names a file that is not one."""
        data = read_json(path, ConfigError)
        with file_errors(path):
            return cls.from_dict(data)
