"""SentencePiece (Kudo & Richardson 2018): the tokenizer of ALBERT, T5, DeBERTa-v3 (Unigram) and LLaMA (BPE).

A SentencePiece model treats text as one stream of Unicode characters, spaces included: there is no word splitting
before segmentation. The steps, as the C++ library (google/sentencepiece) runs them:

1. Normalize (``Normalizer``): the model carries its rule table as a *precompiled charsmap*, a double-array trie
   (darts-clone) over UTF-8 byte strings whose leaf values point into a blob of NUL-terminated replacement strings
   (``CharsMap``). At each position the longest matching key is replaced by its string (NFKC: "ﬁ" → "fi", "①" → "1",
   tab → space, ...); a position no key matches copies one character. User-defined pieces are never normalized.
   ``remove_extra_whitespaces`` drops leading and trailing spaces and collapses runs; ``add_dummy_prefix`` puts one
   space in front (so "Hello" at the start looks like "Hello" in mid-text); every space becomes "▁" (U+2581).
2. Segment:
   - **Unigram** (Kudo 2018): pieces have log-probability scores; Viterbi picks the segmentation of highest total
     score (``_unigram``). A character no piece covers becomes ``<unk>`` with score min − 10. User-defined pieces
     score ``len·max − 0.1`` so they always win.
   - **BPE** (Sennrich et al. 2016, SentencePiece's variant): start from single characters, repeatedly merge the
     adjacent pair whose concatenation is the piece of highest score (leftmost first on a tie) (``_bpe``).
   With ``byte_fallback`` (LLaMA) an unknown character becomes the ``<0xXX>`` pieces of its UTF-8 bytes instead of
   ``<unk>``.
3. Decode: "▁" becomes a space, the leading space of the dummy prefix is dropped, byte pieces are joined and decoded
   as UTF-8, control pieces (``<s>``, ``</s>``) vanish and ``<unk>`` shows as " ⁇ ".

The ``.model`` file is a protobuf ``ModelProto``; ``read_model_proto`` reads it with a small wire-format reader
(varints, length-delimited fields and 32-bit floats are all it needs). ``from_pretrained`` also reads the Unigram or
BPE model of a Hugging Face ``tokenizer.json`` and follows that file's normalizer, pre-tokenizer, added tokens and
template, so its ids are those of the Rust ``tokenizers`` library (which differ from ``sentencepiece`` on some
strings, e.g. ALBERT's converter keeps a trailing "▁"; the fixtures record both).

Scores are float32 in the file and the C++ library adds them in float32; so does ``_unigram`` (``_f32``), so ties
break exactly as there.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
import re
import struct
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import SupportsIndex

from models.tokenizers.common import check_id, special_splitter, split_special
from tinytensor.io import CheckpointError

SPACE = "\u2581"                      # "▁", SentencePiece's visible space
MODEL_FILES = ("spiece.model", "spm.model", "tokenizer.model")   # ALBERT/T5, DeBERTa-v3, LLaMA
TOKENIZER_JSON = "tokenizer.json"
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6   # SentencePiece.Type
UNIGRAM, BPE = 1, 2                                                        # TrainerSpec.ModelType
UNK_PENALTY = 10.0
FLT_MIN = 1.1754943508222875e-38
_BYTE_PIECE = re.compile(r"<0x([0-9A-F]{2})>")


class SentencePieceError(CheckpointError):
    """A .model or tokenizer.json file that cannot be read as a SentencePiece model; the message names the file."""


# ---- protobuf wire format ------------------------------------------------------------------------------------------
def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the base-128 varint at ``pos`` (7 bits a byte, low first, high bit = more)."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def proto_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) for each field of a protobuf message: ints for varints (wire type 0), bytes for
    length-delimited fields (2) and for fixed 64- and 32-bit fields (1, 5). ValueError on anything malformed."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError(f"field {number} runs past the end ({length} bytes)")
            value, pos = data[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise ValueError(f"field {number} runs past the end")
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire} (field {number})")
        yield number, value


def _int32(value: int) -> int:
    """A varint read as a protobuf int32 (negative numbers are sent as 64-bit two's complement)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _expect(value, kind: type, name: str):
    if not isinstance(value, kind):
        raise ValueError(f"{name} has the wrong wire type")
    return value


@dataclass
class ModelProto:
    """What encoding needs from sentencepiece_model.proto: the pieces (string, score, type), TrainerSpec
    (model_type, byte_fallback, special ids, unk_surface, treat_whitespace_as_suffix) and NormalizerSpec."""

    pieces: list[tuple[str, float, int]] = field(default_factory=list)
    model_type: int = UNIGRAM
    byte_fallback: bool = False
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    unk_surface: str = " \u2047 "
    treat_whitespace_as_suffix: bool = False
    normalizer_name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


def read_model_proto(data: bytes) -> ModelProto:
    """Parse a serialized ``ModelProto`` (fields: 1 pieces, 2 trainer_spec, 3 normalizer_spec); ValueError if
    malformed. Unknown fields are skipped, as protobuf does."""
    proto = ModelProto()
    for number, value in proto_fields(data):
        if number == 1:
            piece, score, kind = "", 0.0, NORMAL
            for sub, sub_value in proto_fields(_expect(value, bytes, "pieces")):
                if sub == 1:
                    piece = _expect(sub_value, bytes, "piece").decode("utf-8")
                elif sub == 2:
                    score = struct.unpack("<f", _expect(sub_value, bytes, "score"))[0]
                elif sub == 3:
                    kind = _expect(sub_value, int, "type")
            if not NORMAL <= kind <= BYTE:
                raise ValueError(f"piece {piece!r} has unknown type {kind}")
            proto.pieces.append((piece, score, kind))
        elif number == 2:
            for sub, sub_value in proto_fields(_expect(value, bytes, "trainer_spec")):
                if sub == 3:
                    proto.model_type = _expect(sub_value, int, "model_type")
                elif sub == 35:
                    proto.byte_fallback = bool(_expect(sub_value, int, "byte_fallback"))
                elif sub == 24:
                    proto.treat_whitespace_as_suffix = bool(_expect(sub_value, int, "treat_whitespace_as_suffix"))
                elif sub in (40, 41, 42, 43):
                    name = {40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}[sub]
                    setattr(proto, name, _int32(_expect(sub_value, int, name)))
                elif sub == 44:
                    proto.unk_surface = _expect(sub_value, bytes, "unk_surface").decode("utf-8")
        elif number == 3:
            for sub, sub_value in proto_fields(_expect(value, bytes, "normalizer_spec")):
                if sub == 1:
                    proto.normalizer_name = _expect(sub_value, bytes, "name").decode("utf-8")
                elif sub == 2:
                    proto.precompiled_charsmap = _expect(sub_value, bytes, "precompiled_charsmap")
                elif sub in (3, 4, 5):
                    name = {3: "add_dummy_prefix", 4: "remove_extra_whitespaces", 5: "escape_whitespaces"}[sub]
                    setattr(proto, name, bool(_expect(sub_value, int, name)))
    if not proto.pieces:
        raise ValueError("no pieces")
    if proto.model_type not in (UNIGRAM, BPE):
        raise ValueError(f"model_type {proto.model_type} is not supported (1 = Unigram, 2 = BPE)")
    return proto


# ---- normalization -------------------------------------------------------------------------------------------------
class CharsMap:
    """sentencepiece's precompiled charsmap: ``uint32 trie_size`` (little-endian), a darts-clone double array of
    ``trie_size / 4`` uint32 units, then the replacement strings, each ending in NUL.

    A unit packs: bit 8 = has a leaf child, bits 0-7 (and 31) = the label, bits 10-31 = the offset to the children
    (shifted left by 8 more when bit 9 is set); a leaf unit's low 31 bits are its value (an offset into the strings).
    From node ``n``, the child for byte ``c`` sits at ``n ^ offset(n) ^ c`` and is real if its label is ``c``.
    """

    def __init__(self, blob: bytes) -> None:
        if len(blob) < 4:
            raise ValueError("precompiled_charsmap shorter than its 4-byte header")
        trie_size = struct.unpack_from("<I", blob)[0]
        if trie_size % 4 or 4 + trie_size > len(blob):
            raise ValueError(f"precompiled_charsmap trie size {trie_size} does not fit the blob ({len(blob)} bytes)")
        self.units = struct.unpack_from(f"<{trie_size // 4}I", blob, 4)
        self.strings = blob[4 + trie_size:]

    def longest_prefix(self, data: bytes, pos: int) -> tuple[int, bytes] | None:
        """(length, replacement) of the longest key that starts ``data[pos:]``, or None (darts' commonPrefixSearch)."""
        units, best = self.units, None
        unit = units[0]
        node = (unit >> 10) << ((unit & 0x200) >> 6)
        for index in range(pos, len(data)):
            byte = data[index]
            node ^= byte
            if node >= len(units):
                break
            unit = units[node]
            if unit & 0x800000FF != byte:
                break
            node ^= (unit >> 10) << ((unit & 0x200) >> 6)
            if (unit >> 8) & 1:
                best = (index - pos + 1, units[node] & 0x7FFFFFFF)
        if best is None:
            return None
        length, start = best
        end = self.strings.find(b"\0", start)
        return length, self.strings[start:end if end >= 0 else len(self.strings)]


def _char_length(data: bytes, pos: int) -> int:
    """Bytes in the UTF-8 character at ``pos`` (the input comes from a Python str, so it is valid UTF-8)."""
    lead = data[pos]
    return 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def _longest_of(data: bytes, pos: int, symbols: frozenset[bytes], lengths: tuple[int, ...]) -> int:
    """Byte length of the longest symbol that starts at ``pos`` (0 if none): the prefix matcher of user pieces."""
    for length in lengths:
        if data[pos:pos + length] in symbols:
            return length
    return 0


class Normalizer:
    """sentencepiece's ``Normalizer::Normalize`` on UTF-8 bytes (see the module docstring, step 1)."""

    def __init__(self, charsmap: bytes, add_dummy_prefix: bool, remove_extra_whitespaces: bool,
                 escape_whitespaces: bool, treat_whitespace_as_suffix: bool, user_defined: Iterable[str]) -> None:
        self.charsmap = CharsMap(charsmap) if charsmap else None
        self.add_dummy_prefix = add_dummy_prefix
        self.remove_extra_whitespaces = remove_extra_whitespaces
        self.escape_whitespaces = escape_whitespaces
        self.suffix = treat_whitespace_as_suffix
        self.user_defined = frozenset(piece.encode("utf-8") for piece in user_defined)
        self.user_lengths = tuple(sorted({len(piece) for piece in self.user_defined}, reverse=True))

    def prefix(self, data: bytes, pos: int) -> tuple[bytes, int]:
        """(normalized bytes, bytes consumed) at ``pos``: a user-defined piece as it is, else the longest charsmap
        rule, else one character."""
        if self.user_lengths:
            length = _longest_of(data, pos, self.user_defined, self.user_lengths)
            if length:
                return data[pos:pos + length], length
        if self.charsmap is not None:
            match = self.charsmap.longest_prefix(data, pos)
            if match is not None:
                return match[1], match[0]
        length = _char_length(data, pos)
        return data[pos:pos + length], length

    def __call__(self, text: str) -> bytes:
        data, pos = text.encode("utf-8"), 0
        space = SPACE.encode("utf-8") if self.escape_whitespaces else b" "
        if self.remove_extra_whitespaces:           # leading whitespace
            while pos < len(data):
                normalized, consumed = self.prefix(data, pos)
                if normalized != b" ":
                    break
                pos += consumed
        if pos == len(data):
            return b""
        out = bytearray()
        if self.add_dummy_prefix and not self.suffix:
            out += space
        previous_space = self.remove_extra_whitespaces
        while pos < len(data):
            normalized, consumed = self.prefix(data, pos)
            if previous_space:
                normalized = normalized.lstrip(b" ")
            if normalized:
                out += normalized.replace(b" ", space) if self.escape_whitespaces else normalized
                previous_space = normalized.endswith(b" ")
            pos += consumed
            if not self.remove_extra_whitespaces:
                previous_space = False
        if self.remove_extra_whitespaces:           # trailing whitespace
            while out.endswith(space):
                del out[-len(space):]
        if self.add_dummy_prefix and self.suffix:
            out += space
        return bytes(out)


# ---- segmentation --------------------------------------------------------------------------------------------------
def _f32(value: float) -> float:
    """``value`` rounded to float32 (sentencepiece keeps path scores in C++ floats); ±inf past float32's range."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


class SentencePieceTokenizer:
    """A SentencePiece model (Unigram or BPE) with the ids of the ``sentencepiece`` library (or, loaded from a
    ``tokenizer.json``, of Hugging Face ``tokenizers``).

    ``encode(text)`` gives ids without BOS/EOS, as ``SentencePieceProcessor.encode``; ``add_special_tokens=True``
    puts ``prefix_ids`` before and ``suffix_ids`` after them: from a ``.model``, the model's BOS and EOS (where it
    has them), as ``encode(add_bos=True, add_eos=True)``; from a ``tokenizer.json``, its template (``[CLS] $A [SEP]``
    for ALBERT, ``<s> $A`` for LLaMA). Set the two lists to change that (LLaMA's HF tokenizer adds BOS only).
    """

    def __init__(self, proto: ModelProto, source: str = "model") -> None:
        self.source = source
        self.proto = proto
        self.model_type = proto.model_type
        self._id_to_piece = [piece for piece, _, _ in proto.pieces]
        self._scores = [score for _, score, _ in proto.pieces]
        self._types = [kind for _, _, kind in proto.pieces]
        self._pieces: dict[bytes, int] = {}       # NORMAL, USER_DEFINED, UNUSED: what segmentation can produce
        self._reserved: dict[str, int] = {}       # CONTROL, UNKNOWN, BYTE
        self._byte_ids: dict[int, int] = {}
        for index, (piece, _, kind) in enumerate(proto.pieces):
            table = self._pieces if kind in (NORMAL, USER_DEFINED, UNUSED) else self._reserved
            key = piece.encode("utf-8") if table is self._pieces else piece
            if key in table:
                raise ValueError(f"piece {piece!r} appears twice (ids {table[key]} and {index})")
            table[key] = index
            if kind == BYTE:
                match = _BYTE_PIECE.fullmatch(piece)
                if not match:
                    raise ValueError(f"byte piece {piece!r} is not of the form <0xXX>")
                self._byte_ids[int(match.group(1), 16)] = index
        unknown = [index for index, kind in enumerate(self._types) if kind == UNKNOWN]
        if len(unknown) != 1:
            raise ValueError(f"expected one unknown piece, found {len(unknown)}")
        self.unk_id = unknown[0]
        self.bos_id = proto.bos_id if 0 <= proto.bos_id < len(self._id_to_piece) else -1
        self.eos_id = proto.eos_id if 0 <= proto.eos_id < len(self._id_to_piece) else -1
        self.pad_id = proto.pad_id if 0 <= proto.pad_id < len(self._id_to_piece) else -1
        self.byte_fallback = proto.byte_fallback and len(self._byte_ids) == 256
        self.prefix_ids = [self.bos_id] if self.bos_id >= 0 else []
        self.suffix_ids = [self.eos_id] if self.eos_id >= 0 else []
        user_defined = [piece for piece, _, kind in proto.pieces if kind == USER_DEFINED]
        self.normalizer = Normalizer(proto.precompiled_charsmap, proto.add_dummy_prefix,
                                     proto.remove_extra_whitespaces, proto.escape_whitespaces,
                                     proto.treat_whitespace_as_suffix, user_defined)
        self._user_lengths = self.normalizer.user_lengths
        normal_scores = [score for score, kind in zip(self._scores, self._types) if kind == NORMAL]
        self._min_score = min(normal_scores, default=3.4028234663852886e38)
        self._max_score = max([FLT_MIN, *normal_scores])
        self._piece_lengths = tuple(sorted({len(piece) for piece in self._pieces}, reverse=True))
        # Hugging Face tokenizer.json behaviour (None/empty for a .model file): see _from_tokenizer_json
        self._hf: dict | None = None
        self._merge_ranks: dict[tuple[bytes, bytes], int] | None = None
        self._added: dict[str, int] = {}
        self._splitter = None

    # ---- loading ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> SentencePieceTokenizer:
        """Read a SentencePiece ``.model`` file; SentencePieceError naming the file if it is not one."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (a SentencePiece model file)")
        try:
            return cls(read_model_proto(path.read_bytes()), source=str(path))
        except (ValueError, UnicodeDecodeError, struct.error) as error:
            raise SentencePieceError(f"{path} is not a valid SentencePiece model: {error}") from None

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> SentencePieceTokenizer:
        """The tokenizer of a checkpoint directory: ``spiece.model``, ``spm.model`` or ``tokenizer.model`` if one is
        there, else the Unigram/BPE model of ``tokenizer.json``."""
        directory = Path(directory)
        for name in MODEL_FILES:
            if (directory / name).is_file():
                return cls.from_file(directory / name)
        if (directory / TOKENIZER_JSON).is_file():
            return cls.from_tokenizer_json(directory / TOKENIZER_JSON)
        raise FileNotFoundError(f"{directory} has no SentencePiece model ({', '.join(MODEL_FILES)} or "
                                f"{TOKENIZER_JSON})")

    @classmethod
    def from_tokenizer_json(cls, path: str | Path) -> SentencePieceTokenizer:
        """The Unigram or BPE model of a Hugging Face ``tokenizer.json``, with its normalizer, pre-tokenizer,
        added tokens and template; SentencePieceError naming the file if it cannot be read."""
        path = Path(path)
        try:
            return _from_tokenizer_json(cls, json.loads(path.read_text(encoding="utf-8")), str(path))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise SentencePieceError(f"{path} is not a SentencePiece-style tokenizer.json: {error!r}") from None

    # ---- vocabulary ------------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._id_to_piece)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        kind = "Unigram" if self.model_type == UNIGRAM else "BPE"
        return f"SentencePieceTokenizer({kind}, vocab_size={self.vocab_size}, byte_fallback={self.byte_fallback})"

    def id_to_piece(self, token_id: SupportsIndex) -> str:
        return self._id_to_piece[check_id(token_id, self.vocab_size)]

    def piece_to_id(self, piece: str) -> int:
        """The id of a piece; the unknown id for a string that is not one (as sentencepiece)."""
        if piece in self._reserved:
            return self._reserved[piece]
        return self._pieces.get(piece.encode("utf-8"), self.unk_id)

    # ---- encoding --------------------------------------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Ids of ``text``; with ``add_special_tokens``, ``prefix_ids + ids + suffix_ids``."""
        if self._hf is not None:
            ids = self._encode_hf(text)
        else:
            ids = self._encode_normalized(self.normalizer(text))
        return [*self.prefix_ids, *ids, *self.suffix_ids] if add_special_tokens else ids

    def tokenize(self, text: str) -> list[str]:
        """The pieces of ``text`` (``encode`` written as strings)."""
        return [self._id_to_piece[index] for index in self.encode(text)]

    def _encode_normalized(self, data: bytes) -> list[int]:
        """Segment normalized bytes, then spell unknown pieces as bytes when the model has byte fallback."""
        segments = self._unigram(data) if self.model_type == UNIGRAM else self._bpe(data)
        ids: list[int] = []
        for piece, index in segments:
            if index == self.unk_id and self.byte_fallback:
                ids.extend(self._byte_ids[byte] for byte in piece)
            else:
                ids.append(index)
        return ids

    def _unigram(self, data: bytes) -> list[tuple[bytes, int]]:
        """Viterbi over piece scores (sentencepiece's ``EncodeOptimized``): best[e] is the best score of a
        segmentation of ``data[:e]``; each start tries every piece that begins there; a character no piece of its
        own length covers gets the unknown piece with score ``min − 10``. Returns (piece bytes, id) pairs."""
        size = len(data)
        best_score = [0.0] * (size + 1)
        best_start = [-1] * (size + 1)
        best_id = [-1] * (size + 1)
        unk_score = _f32(self._min_score - UNK_PENALTY)
        fuse_unk = self._hf is None or self._hf.get("fuse_unk", True)
        start = 0
        while start < size:
            here = best_score[start]
            char_length = min(_char_length(data, start), size - start)
            has_single = False
            for length in self._piece_lengths:
                if start + length > size:
                    continue
                index = self._pieces.get(data[start:start + length])
                if index is None or self._types[index] == UNUSED:
                    continue
                end = start + length
                if self._types[index] == USER_DEFINED:
                    candidate = (_f32(length * self._max_score) - 0.1) + here
                else:
                    candidate = _f32(self._scores[index] + here)
                if best_start[end] == -1 or candidate > best_score[end]:
                    best_score[end], best_start[end], best_id[end] = _f32(candidate), start, index
                if length == char_length:
                    has_single = True
            if not has_single:
                end = start + char_length
                candidate = _f32(unk_score + here)
                if best_start[end] == -1 or candidate > best_score[end]:
                    best_score[end], best_start[end], best_id[end] = candidate, start, self.unk_id
            start += char_length
        segments: list[tuple[bytes, int]] = []
        end = size
        while end > 0:
            start = best_start[end]
            piece, index = data[start:end], best_id[end]
            if fuse_unk and index == self.unk_id and segments and segments[-1][1] == self.unk_id:
                piece = piece + segments.pop()[0]    # a run of unknown characters is one unknown piece
            segments.append((piece, index))
            end = start
        return segments[::-1]

    def _bpe(self, data: bytes) -> list[tuple[bytes, int]]:
        """SentencePiece BPE: characters (user-defined pieces whole and frozen), then repeatedly merge the adjacent
        pair whose concatenation is the best-scoring piece, the leftmost on a tie (a heap over a linked list). A
        tokenizer.json ranks pairs by its merges list instead. UNUSED pieces are split back into their halves."""
        symbols: list[bytes] = []
        frozen: list[bool] = []
        pos = 0
        while pos < len(data):
            length = _longest_of(data, pos, self.normalizer.user_defined, self._user_lengths) \
                if self._user_lengths else 0
            frozen.append(length > 0)
            length = length or _char_length(data, pos)
            symbols.append(data[pos:pos + length])
            pos += length
        count = len(symbols)
        next_index = list(range(1, count + 1))
        prev_index = list(range(-1, count - 1))
        heap: list[tuple[float, int, int, int]] = []   # (−priority, left, right, merged size)
        split_unused: dict[bytes, tuple[bytes, bytes]] = {}

        def queue(left: int, right: int) -> None:
            if left < 0 or right >= count or frozen[left] or frozen[right]:
                return
            merged = symbols[left] + symbols[right]
            if self._merge_ranks is not None:
                rank = self._merge_ranks.get((symbols[left], symbols[right]))
                if rank is None:
                    return
                priority = -rank
            else:
                index = self._pieces.get(merged)
                if index is None:
                    return
                priority = self._scores[index]
                if self._types[index] == UNUSED:
                    split_unused[merged] = (symbols[left], symbols[right])
            heapq.heappush(heap, (-priority, left, right, len(merged)))

        for left in range(count - 1):
            queue(left, left + 1)
        while heap:
            _, left, right, size = heapq.heappop(heap)
            if not symbols[left] or not symbols[right] or next_index[left] != right \
                    or len(symbols[left]) + len(symbols[right]) != size:
                continue
            symbols[left] += symbols[right]
            symbols[right] = b""
            next_index[left] = next_index[right]
            if next_index[left] < count:
                prev_index[next_index[left]] = left
            queue(prev_index[left], left)
            queue(left, next_index[left])

        segments: list[tuple[bytes, int]] = []

        def emit(piece: bytes) -> None:
            index = self._piece_id(piece)
            if self._types[index] == UNUSED and piece in split_unused:
                for half in split_unused[piece]:
                    emit(half)
                return
            if self._hf is not None and self._hf.get("fuse_unk") and index == self.unk_id and segments \
                    and segments[-1][1] == self.unk_id:
                piece = segments.pop()[0] + piece
            segments.append((piece, index))

        index = 0 if count else count
        while index < count:
            emit(symbols[index])
            index = next_index[index]
        return segments

    def _piece_id(self, piece: bytes) -> int:
        """sentencepiece's PieceToId on a segment: a reserved piece, a normal one, else unknown."""
        reserved = self._reserved.get(piece.decode("utf-8", errors="replace"))
        return reserved if reserved is not None else self._pieces.get(piece, self.unk_id)

    # ---- decoding --------------------------------------------------------------------------------------------------
    def decode(self, ids: Iterable[SupportsIndex]) -> str:
        """Text of ids: "▁" → space (the first piece loses its dummy-prefix space), byte pieces joined and decoded
        as UTF-8 (U+FFFD for each invalid byte), control pieces dropped, the unknown piece as its surface " ⁇ "."""
        text = ""
        pending = bytearray()
        at_start = True
        for token_id in ids:
            index = check_id(token_id, self.vocab_size)
            kind = self._types[index]
            if kind == BYTE:
                pending.append(int(self._id_to_piece[index][3:5], 16))
                continue
            if pending:
                text += _decode_bytes(bytes(pending))
                pending.clear()
            text += self._surface(index, at_start)
            at_start = at_start and kind == CONTROL
        if pending:
            text += _decode_bytes(bytes(pending))
        return text

    def _surface(self, index: int, at_start: bool) -> str:
        kind, piece = self._types[index], self._id_to_piece[index]
        if kind == CONTROL:
            return ""
        if kind == UNKNOWN:
            return self.proto.unk_surface
        if at_start and (self.proto.add_dummy_prefix or self.proto.remove_extra_whitespaces) \
                and piece.startswith(SPACE):
            piece = piece[1:]
        return piece.replace(SPACE, " ")

    # ---- Hugging Face tokenizer.json -------------------------------------------------------------------------------
    def _encode_hf(self, text: str) -> list[int]:
        """Added tokens matched first, then the file's normalizers, pre-tokenizer and model, piece by piece."""
        ids: list[int] = []
        for part, is_added in split_special(text, self._splitter):
            if is_added:
                ids.append(self._added[part])
                continue
            normalized = part
            for step in self._hf["normalizers"]:
                normalized = step(normalized)
            for word in self._hf["pre_tokenize"](normalized):
                ids.extend(self._encode_normalized(word.encode("utf-8")))
        return ids


def _decode_bytes(data: bytes) -> str:
    """UTF-8 decoding where each invalid byte becomes one U+FFFD (sentencepiece's byte-piece surfaces)."""
    return data.decode("utf-8", errors="replace")


def _from_tokenizer_json(cls, spec: dict, source: str) -> SentencePieceTokenizer:
    """Build the tokenizer from a parsed tokenizer.json (see ``SentencePieceTokenizer.from_tokenizer_json``)."""
    model = spec["model"]
    added = {token["content"]: int(token["id"]) for token in spec.get("added_tokens") or []}
    proto = ModelProto(add_dummy_prefix=False, remove_extra_whitespaces=False, bos_id=-1, eos_id=-1)
    if model["type"] == "Unigram":
        proto.model_type = UNIGRAM
        unk_id = model.get("unk_id")
        for index, (piece, score) in enumerate(model["vocab"]):
            kind = UNKNOWN if index == unk_id else CONTROL if piece in added else NORMAL
            proto.pieces.append((piece, float(score), kind))
    elif model["type"] == "BPE":
        proto.model_type = BPE
        vocab = model["vocab"]
        unk = model.get("unk_token")
        for index, piece in enumerate(sorted(vocab, key=vocab.__getitem__)):
            if vocab[piece] != index:
                raise ValueError(f"BPE vocabulary ids are not 0..{len(vocab) - 1}")
            kind = UNKNOWN if piece == unk else BYTE if _BYTE_PIECE.fullmatch(piece) else \
                CONTROL if piece in added else NORMAL
            proto.pieces.append((piece, 0.0, kind))
    else:
        raise ValueError(f"model type {model['type']!r} is not Unigram or BPE")
    proto.byte_fallback = bool(model.get("byte_fallback", False))
    tokenizer = cls(proto, source)
    tokenizer._hf = {"fuse_unk": bool(model.get("fuse_unk", model["type"] == "Unigram")),
                     "normalizers": _hf_normalizers(spec.get("normalizer")),
                     "pre_tokenize": _hf_pre_tokenizer(spec.get("pre_tokenizer")),
                     "decoder": spec.get("decoder")}
    if model["type"] == "BPE":
        merges = [pair.split(" ") if isinstance(pair, str) else pair for pair in model["merges"]]
        tokenizer._merge_ranks = {(left.encode("utf-8"), right.encode("utf-8")): rank
                                  for rank, (left, right) in enumerate(merges)}
    if model["type"] == "Unigram":   # Hugging Face's Unigram lattice holds every vocabulary entry
        for index, kind in enumerate(tokenizer._types):
            if kind in (UNKNOWN, CONTROL):
                tokenizer._pieces.setdefault(tokenizer._id_to_piece[index].encode("utf-8"), index)
        tokenizer._piece_lengths = tuple(sorted({len(piece) for piece in tokenizer._pieces}, reverse=True))
    tokenizer._added = added
    tokenizer._splitter = special_splitter(list(added))
    template = (spec.get("post_processor") or {}).get("single") or []
    prefix, suffix, seen_sequence = [], [], False
    for item in template:
        if "Sequence" in item:
            seen_sequence = True
        elif "SpecialToken" in item:
            token_id = added.get(item["SpecialToken"]["id"], tokenizer.piece_to_id(item["SpecialToken"]["id"]))
            (suffix if seen_sequence else prefix).append(token_id)
    tokenizer.prefix_ids, tokenizer.suffix_ids = prefix, suffix
    return tokenizer


def _hf_normalizers(spec: dict | None) -> list:
    """The normalizer steps of a tokenizer.json as functions str → str (the kinds SentencePiece conversions use)."""
    if spec is None:
        return []
    kind = spec["type"]
    if kind == "Sequence":
        return [step for sub in spec["normalizers"] for step in _hf_normalizers(sub)]
    if kind == "Precompiled":
        return [_HFPrecompiled(CharsMap(base64.b64decode(spec["precompiled_charsmap"])))]
    if kind == "Replace":
        pattern, content = spec["pattern"], spec["content"]
        if "String" in pattern:
            return [lambda text: text.replace(pattern["String"], content)]
        regex = re.compile(pattern["Regex"])
        return [lambda text: regex.sub(content, text)]
    if kind == "Prepend":
        return [lambda text: spec["prepend"] + text if text else text]
    if kind in ("NFC", "NFD", "NFKC", "NFKD"):
        return [lambda text: unicodedata.normalize(kind, text)]
    if kind == "Lowercase":
        return [str.lower]
    if kind == "StripAccents":
        return [lambda text: "".join(char for char in text if not unicodedata.combining(char))]
    raise ValueError(f"normalizer {kind!r} is not supported")


class _HFPrecompiled:
    """Hugging Face's ``Precompiled`` normalizer (the spm_precompiled crate), which differs from sentencepiece: it
    walks grapheme clusters, and a cluster shorter than 6 bytes that *starts* with a key of the charsmap is replaced
    whole by that key's string (the shortest key), dropping the rest of the cluster ("é" + U+0301 + U+0301 → "é");
    otherwise each character is replaced when it is a key. Clusters here are an approximation of UAX #29 (a
    character other than a control with its following marks, variation selectors, emoji modifiers and ZWJ-joined
    characters, and regional-indicator pairs; CR LF), enough for the strings of the fixtures."""

    def __init__(self, charsmap: CharsMap) -> None:
        self.charsmap = charsmap

    def transform(self, chunk: str) -> str | None:
        data = chunk.encode("utf-8")
        units = self.charsmap
        for length in range(1, len(data) + 1):            # the shortest key that starts the chunk
            match = units.longest_prefix(data[:length], 0)
            if match is not None and match[0] == length:
                return match[1].decode("utf-8")
        return None

    def __call__(self, text: str) -> str:
        out = []
        for cluster in _graphemes(text):
            if len(cluster.encode("utf-8")) < 6:
                normalized = self.transform(cluster)
                if normalized is not None:
                    out.append(normalized)
                    continue
            for char in cluster:
                normalized = self.transform(char)
                out.append(char if normalized is None else normalized)
        return "".join(out)


def _extends_cluster(char: str) -> bool:
    code = ord(char)
    return unicodedata.category(char) in ("Mn", "Me", "Mc") or 0xFE00 <= code <= 0xFE0F \
        or 0x1F3FB <= code <= 0x1F3FF or code == 0x200D or 0xE0020 <= code <= 0xE007F


def _graphemes(text: str) -> list[str]:
    """Approximate extended grapheme clusters (see ``_HFPrecompiled``)."""
    clusters: list[str] = []
    for char in text:
        if clusters:
            last = clusters[-1]
            regional = 0x1F1E6 <= ord(char) <= 0x1F1FF
            after_control = unicodedata.category(last[-1]) == "Cc"    # UAX #29 GB4: break after controls
            if (_extends_cluster(char) and not after_control) or last[-1] == "\u200d" \
                    or (last == "\r" and char == "\n") \
                    or (regional and len(last) == 1 and 0x1F1E6 <= ord(last) <= 0x1F1FF):
                clusters[-1] += char
                continue
        clusters.append(char)
    return clusters


def _hf_pre_tokenizer(spec: dict | None):
    """The pre-tokenizer of a tokenizer.json as a function str → words: none, or Metaspace (spaces → "▁", a "▁"
    in front per ``prepend_scheme``, and with ``split`` a new word before each "▁")."""
    if spec is None:
        return lambda text: [text] if text else []
    if spec["type"] != "Metaspace":
        raise ValueError(f"pre_tokenizer {spec['type']!r} is not supported")
    replacement, scheme, split = spec["replacement"], spec.get("prepend_scheme", "always"), spec.get("split", True)

    def metaspace(text: str) -> list[str]:
        text = text.replace(" ", replacement)
        if scheme in ("always", "first") and text and not text.startswith(replacement):
            text = replacement + text
        if not split:
            return [text] if text else []
        return [word for word in re.split(f"(?={re.escape(replacement)})", text) if word]

    return metaspace
