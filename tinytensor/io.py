"""Reading and writing files: tensors and training checkpoints (safetensors for arrays, JSON for everything else, no
pickle), and the one set of readers every file of the project goes through.

Layer: the top of `tinytensor`, beside `optim`; it uses `backend` (host copies) and `Tensor`, and the rest of the
project (models, tokenizers, corpora, trainers) shares its `atomic_write*` helpers and its readers.

Errors (docs/errors.md). A file that is missing raises FileNotFoundError naming it. A file that is there but
cannot be read as what it should be raises a `FileFormatError` (a ValueError) whose message starts with its path:
`ConfigError` for a JSON settings file, `CheckpointError` for weights and checkpoints, `UnsafePathError` for a path
inside a file that leads out of its directory.

Readers. `read_text` (strict UTF-8; the error names the byte offset), `read_json` (line and column),
`read_json_fields` (a JSON object whose keys are checked against their types by `check_type`: bools only
true/false, ints only integral numbers, floats only finite numbers; the error names file, key, value and type),
`read_safetensors`, and `path_inside`, which resolves a file name read from inside a file against its directory
and refuses absolute paths, `..` and symlinks that lead out, before anything is opened.

Atomic files. `atomic_write(path, write)` writes into a temporary file in the same directory, flushes and fsyncs it,
renames it over `path` with `os.replace` (atomic within one file system) and fsyncs the directory. A crash at any
moment leaves the old file or the new one, never a mix; at worst a stray `.<name>.<random>.tmp` file remains.

Tensor files. `save`/`load` read and write one flat dict name → array in the safetensors format (Hugging Face's),
from host copies made by `backend.to_numpy`: saving a GPU model copies its arrays to the host and leaves the model
where it is. Metadata values may be any JSON value: strings are stored as they are (so {"format": "pt"} reads as
transformers expects), others as JSON text listed under the reserved key "__json__".

Checkpoints. A checkpoint is a directory of two files, and POSIX cannot replace two files (or a non-empty
directory) in one atomic step. So the JSON file is the commit record:

    <dir>/checkpoint.json                          format version, step, optimizer hyperparameters and counters,
                                                   scheduler state, RNG state, config, extra, and the manifest:
                                                   the tensors file's name, SHA-256, and each tensor's dtype/shape
    <dir>/checkpoint-<sha256[:16]>.safetensors     "model/<name>" and "optim/<param index>/<key>" arrays

`save_checkpoint` writes the tensors file (atomically) under a name taken from its own SHA-256, then the JSON naming
it (atomically), and only then deletes tensors files the JSON no longer names. A crash before the JSON is replaced
leaves the old JSON and the old tensors file it names, untouched; a crash after leaves the new pair. `load_checkpoint`
checks the SHA-256 and the manifest, so a truncated, corrupted or mismatched file is reported, naming the file,
instead of being loaded. (A temporary directory renamed into place would need two renames, with a moment where no
checkpoint exists.) One process writes a given checkpoint directory at a time.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import secrets
import struct
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy
import safetensors
import safetensors.numpy

from tinytensor import backend
from tinytensor.tensor import Tensor

CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_FORMAT = "tinytensor-checkpoint"
CHECKPOINT_VERSION = 1
JSON_METADATA_KEY = "__json__"
RECORD_TYPES = {"format": str, "format_version": int, "step": int, "tensors_file": str, "sha256": str,
                "tensors": dict[str, dict], "optimizer": dict | None, "scheduler": dict | None, "rng": dict | None,
                "config": Any, "extra": dict | None}  # checkpoint.json: every key, each with its type
OPTIMIZER_RECORD_TYPES = {"param_groups": list[dict], "state": dict[str, dict]}

PathLike = str | os.PathLike


# ---- errors ------------------------------------------------------------------------------------------------------
class FileFormatError(ValueError):
    """A file that exists but cannot be read as what it should be. `path` is the file; the message starts with it.

    A ValueError, so code that catches ValueError keeps working. A missing file is a FileNotFoundError instead.
    The one-argument form `CheckpointError(message)` (the older signature) is kept: its `path` is None and the
    message is expected to name the file itself."""

    def __init__(self, path: PathLike, problem: str | None = None):
        arguments = (path,) if problem is None else (path, problem)
        super().__init__(*arguments)  # what unpickling and copying call the class with again
        self.path, self.problem = (None, str(path)) if problem is None else (Path(path), problem)

    def __str__(self) -> str:
        return self.problem if self.path is None else f"{self.path}: {self.problem}"


class ConfigError(FileFormatError):
    """A JSON settings file (config.json, tokenizer_config.json, a tokenizer's JSON) that is not a JSON object,
    lacks a required key, has a value of the wrong type, or a value the code does not support."""


class CheckpointError(FileFormatError):
    """Weights that cannot be loaded as what they claim to be: a safetensors file or index that is truncated,
    corrupted or foreign, a training checkpoint that does not match its checkpoint.json, or either not fitting
    the model."""


class UnsafePathError(FileFormatError):
    """A path written inside a file (a checkpoint's tensors file, a shard of a weight index) that is absolute or
    leads out of that file's directory. The file it names is never opened."""


# ---- atomic files --------------------------------------------------------------------------------------------
def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write(file)` on a temporary binary file beside `path`, make it durable, then move it over `path`."""
    path = Path(path)
    tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask, like open()
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda file: file.write(data))


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically, encoded as given, with no newline translation."""
    atomic_write_bytes(path, text.encode(encoding))


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (POSIX; other systems do not open directories)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- reading files -------------------------------------------------------------------------------------------------
def require_file(path: PathLike, hint: str = "") -> Path:
    """`path` as a Path if it is a regular file (symlinks followed). FileNotFoundError naming it if nothing is
    there (with `hint`, e.g. what the directory should hold), FileFormatError if it is a directory or the like."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist" + (f" ({hint})" if hint else ""))
    if not path.is_file():
        raise FileFormatError(path, "not a regular file")
    return path


def read_bytes(path: PathLike, hint: str = "") -> bytes:
    """The bytes of the file at `path` (see `require_file` for the errors)."""
    return require_file(path, hint).read_bytes()


def read_text(path: PathLike, error: type[FileFormatError] = FileFormatError) -> str:
    """A UTF-8 text file, decoded strictly: `error` names the file and the byte offset of the first byte that is
    not UTF-8. Newlines and a byte-order mark are kept as they are (for vocab.txt, merges.txt, TSV data)."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as decode_error:
        raise error(path, f"not UTF-8 text: byte {decode_error.start} is {data[decode_error.start]:#04x} "
                          f"({decode_error.reason})") from None


def read_json(path: PathLike, error: type[FileFormatError] = FileFormatError) -> Any:
    """A JSON file, parsed: `error` names the file and the line and column where parsing failed."""
    text = read_text(path, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as parse_error:
        raise error(path, f"not valid JSON: {parse_error.msg} at line {parse_error.lineno}, column "
                          f"{parse_error.colno}; is it truncated or corrupted?") from None
    except (ValueError, RecursionError) as parse_error:  # an integer of 5000 digits, arrays nested 1000 deep
        raise error(path, f"not usable JSON: {parse_error}") from None


def read_json_fields(path: PathLike, types: Mapping[str, Any], required: Iterable[str] = (),
                     error: type[FileFormatError] = ConfigError) -> dict[str, Any]:
    """The keys of `types` that the JSON object in `path` holds, each checked by `check_type` against its type
    (other keys are ignored, as transformers ignores keys it does not know); `error` names the file and the key
    if a `required` key is missing, a value has the wrong type, or the file does not hold a JSON object."""
    raw = read_json(path, error)
    if not isinstance(raw, dict):
        raise error(path, f"holds {_json_kind(raw)}; expected a JSON object {{...}}")
    missing = [key for key in required if key not in raw]
    if missing:
        raise error(path, f"lacks the key{'s' if len(missing) > 1 else ''} {', '.join(map(json.dumps, missing))}")
    with file_errors(path, error):
        return {key: check_type(value, types[key], key) for key, value in raw.items() if key in types}


def read_safetensors(path: PathLike, error: type[FileFormatError] = CheckpointError,
                     hint: str = "") -> dict[str, numpy.ndarray]:
    """Every array of a safetensors file; `error` names a file that is empty, truncated, corrupted or in
    another format (a pickle, say) and gives the parser's reason."""
    return _deserialize(read_bytes(path, hint), path, error)


@contextlib.contextmanager
def file_errors(path: PathLike, error: type[FileFormatError] = ConfigError):
    """Within the block, a ValueError, TypeError or ArithmeticError (a value read from `path` failing a check, such
    as a config's own `__post_init__`) becomes `error` naming `path`; the library's own file errors pass as they
    are."""
    try:
        yield
    except FileFormatError:
        raise
    except (ValueError, TypeError, ArithmeticError) as check_error:
        raise error(path, str(check_error)) from check_error


def path_inside(directory: PathLike, entry: Any, source: PathLike, key: str) -> Path:
    """directory/entry, for a file name `entry` read from the file `source` (at `key`, e.g. 'tensors_file').

    It must be a relative path that stays inside `directory` with `..` and symlinks resolved; otherwise
    UnsafePathError names `source`, `key` and the entry, and nothing outside is opened. The one exception is a
    Hugging Face cache snapshot (`.../snapshots/<revision>/`), whose files link into the repository's `blobs/`."""
    if not isinstance(entry, str) or not entry or "\0" in entry:
        raise ConfigError(source, f"{key} is {json.dumps(entry)}; expected a file name")
    if Path(entry).is_absolute():
        raise UnsafePathError(source, f"{key} names the absolute path {entry!r}; it must be a file name relative "
                                      f"to {directory}")
    try:
        root, target = Path(directory).resolve(), (Path(directory) / entry).resolve()
    except (OSError, RuntimeError) as resolve_error:  # a symlink loop
        raise UnsafePathError(source, f"{key} {entry!r} cannot be resolved ({resolve_error})") from None
    allowed = [root, *([root.parent.parent / "blobs"] if root.parent.name == "snapshots" else [])]
    if not any(target.is_relative_to(folder) for folder in allowed):
        raise UnsafePathError(source, f"{key} {entry!r} leads out of {directory} (to {target}); it is not read")
    return Path(directory) / entry


# ---- typed values --------------------------------------------------------------------------------------------------
_DESCRIPTIONS = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
                 list: "a list", dict: "an object", type(None): "null"}
_PLURALS = {bool: "booleans", int: "integers", float: "finite numbers", str: "strings", dict: "objects"}


def check_type(value: Any, hint: Any, key: str) -> Any:
    """`value` (parsed from JSON) as the annotated type `hint`, or ValueError naming `key`, the value and the type.

    bool takes only true/false; int only integral numbers (2.0 becomes 2; 1.9, "2" and true are refused); float
    any finite number (ints become floats); str only strings; list[X] and dict[str, X] check every item;
    `X | Y | None` takes the first option that fits; Any takes everything."""
    checked = _checked(value, hint, key)
    if checked is _MISMATCH:
        raise ValueError(f"{json.dumps(key)} is {_json_text(value)} ({_json_kind(value)}); "
                         f"expected {_describe(hint)}")
    return checked


_MISMATCH = object()


def _checked(value: Any, hint: Any, key: str) -> Any:
    """`value` as `hint`, or _MISMATCH when it does not fit; items of a list or dict that do not fit raise."""
    options = _union_options(hint)
    if options is not None:
        return next((out for option in options if (out := _checked(value, option, key)) is not _MISMATCH),
                    _MISMATCH)
    origin = typing.get_origin(hint) or hint
    if hint is Any:
        return value
    if hint is type(None):
        return None if value is None else _MISMATCH
    if hint is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if hint is int:
        return _as_int(value)
    if hint is float:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if is_number and math.isfinite(value) else _MISMATCH
    if hint is str:
        return value if isinstance(value, str) else _MISMATCH
    if origin is list:
        item_type = next(iter(typing.get_args(hint)), Any)
        return [check_type(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)] \
            if isinstance(value, list) else _MISMATCH
    if origin is dict:
        value_type = typing.get_args(hint)[1] if typing.get_args(hint) else Any
        return {name: check_type(item, value_type, f"{key}.{name}") for name, item in value.items()} \
            if isinstance(value, dict) else _MISMATCH
    raise TypeError(f"check_type: annotation {hint!r} of {key!r} is not supported")


def _union_options(hint: Any) -> tuple | None:
    """The options of `X | Y` (or typing.Union), None for any other annotation."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return None


def _as_int(value: Any) -> Any:
    """An integral JSON number as an int (2.0 → 2); _MISMATCH for bools, fractions, infinities and the rest."""
    if isinstance(value, bool):
        return _MISMATCH
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return _MISMATCH


def _describe(hint: Any) -> str:
    """What a value of annotation `hint` looks like in JSON, in words: 'an integer, a list of integers or null'."""
    options = _union_options(hint)
    if options is not None:
        words = [_describe(option) for option in options]
        return ", ".join(words[:-1]) + " or " + words[-1]
    origin = typing.get_origin(hint) or hint
    if origin is list and typing.get_args(hint) and typing.get_args(hint)[0] in _PLURALS:
        return f"a list of {_PLURALS[typing.get_args(hint)[0]]}"
    return _DESCRIPTIONS.get(origin, "any JSON value")


def _json_kind(value: Any) -> str:
    """The JSON type of a parsed value, in words ('a string', 'an array', ...)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    kinds = {str: "a string", int: "a number", float: "a number", list: "an array", dict: "an object"}
    return next((kind for python_type, kind in kinds.items() if isinstance(value, python_type)), type(value).__name__)


def _json_text(value: Any, limit: int = 60) -> str:
    """`value` as JSON text, cut to `limit` characters."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def field_types(config_class: type) -> dict[str, Any]:
    """Name → annotation of a dataclass's constructor arguments (its fields and `InitVar`s, the latter unwrapped)."""
    hints = typing.get_type_hints(config_class)
    init_vars = {name: hint.type for name, hint in hints.items() if isinstance(hint, dataclasses.InitVar)}
    return {**{field.name: hints[field.name] for field in dataclasses.fields(config_class) if field.init},
            **init_vars}


# ---- tensor files ----------------------------------------------------------------------------------------------
def save(state_dict: Mapping[str, Any], path: PathLike, metadata: Mapping[str, Any] | None = None) -> None:
    """Write a flat dict name → Tensor (or NumPy/CuPy array) to a safetensors file, atomically.

    `metadata` maps strings to JSON values and is stored in the file's header (read it with `load_metadata`)."""
    arrays = {name: _host_array(value) for name, value in state_dict.items()}
    atomic_write_bytes(path, _serialize(arrays, _encode_metadata(metadata), path))


def load(path: PathLike, device: str = "cpu") -> dict[str, Tensor]:
    """Read a safetensors file into a dict name → Tensor on `device`; CheckpointError names a damaged file."""
    arrays = read_safetensors(path)
    return {name: Tensor(array, device=device) for name, array in arrays.items()}


def load_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata saved with `save` (JSON values decoded), {} if there is none."""
    path = require_file(path)
    try:
        with safetensors.safe_open(str(path), framework="numpy") as file:
            raw = file.metadata() or {}
        json_keys = json.loads(raw.pop(JSON_METADATA_KEY, "[]"))
        return {key: json.loads(value) if key in json_keys else value for key, value in raw.items()}
    except (safetensors.SafetensorError, ValueError) as error:
        raise CheckpointError(path, f"not a readable safetensors file, or its metadata is damaged ({error})") \
            from None


def _host_array(value) -> numpy.ndarray:
    """A C-contiguous host array for a Tensor or array (a copy from the GPU; no copy of a contiguous CPU array)."""
    array = backend.to_numpy(value.data if isinstance(value, Tensor) else value)
    return array if array.flags.c_contiguous else array.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)


def _encode_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not metadata:
        return None
    if JSON_METADATA_KEY in metadata:
        raise ValueError(f"metadata key {JSON_METADATA_KEY!r} is reserved")
    encoded = {key: value if isinstance(value, str) else _to_json(value) for key, value in metadata.items()}
    json_keys = sorted(k for k, v in metadata.items() if not isinstance(v, str))
    if json_keys:  # string-only metadata (e.g. {"format": "pt"}) is written exactly as given
        encoded[JSON_METADATA_KEY] = json.dumps(json_keys)
    return encoded


def _serialize(arrays: dict[str, numpy.ndarray], metadata: dict[str, str] | None, path: PathLike) -> bytes:
    try:
        return safetensors.numpy.save(arrays, metadata=metadata)
    except (safetensors.SafetensorError, TypeError, ValueError) as error:
        raise ValueError(f"cannot save {path} as safetensors: {error}") from error


def _to_json(value: Any) -> str:
    return json.dumps(value, default=_json_default, indent=1)


def _json_default(value: Any) -> Any:
    """JSON for NumPy scalars (e.g. a float32 lr) and dataclass configs; anything else is an error."""
    if isinstance(value, numpy.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


# ---- weight files in any floating dtype (bf16 included) ---------------------------------------------------------
SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
                      "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
STORAGE_DTYPES = ("float64", "float32", "float16", backend.bfloat16.name)


def bfloat16_to_float32(bits: numpy.ndarray) -> numpy.ndarray:
    """bf16 bit patterns (uint16) → float32, exactly: a bf16 number is the upper 16 bits of a float32."""
    return (bits.astype(numpy.uint32) << 16).view(numpy.float32)


def float32_to_bfloat16(array: numpy.ndarray) -> numpy.ndarray:
    """float32 → bf16 bit patterns (uint16), rounded to nearest, ties to even (as torch's `.to(torch.bfloat16)`);
    NaNs stay (quiet) NaNs, infinities stay infinite, and values past the largest bf16 become ±inf."""
    bits = numpy.ascontiguousarray(array, dtype=numpy.float32).view(numpy.uint32)
    rounded = (bits + (numpy.uint32(0x7FFF) + ((bits >> 16) & 1))) >> 16
    nan = numpy.isnan(array)
    return numpy.where(nan, (bits >> 16) | 0x40, rounded).astype(numpy.uint16)


def _deserialize(data: bytes, path: PathLike,
                 error: type[FileFormatError] = CheckpointError) -> dict[str, numpy.ndarray]:
    """The arrays of safetensors bytes read from `path`: BF16 tensors become float32 (exact), the other dtypes stay
    as stored. `error` names the file when the header and the data do not fit together (truncated, corrupted, or
    another format such as a pickle)."""
    try:
        (header_size,) = struct.unpack_from("<Q", data)
        header = json.loads(data[8:8 + header_size].decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        body, arrays = 8 + header_size, {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = numpy.dtype(SAFETENSORS_DTYPES[info["dtype"]])
            shape = [int(size) for size in info["shape"]]
            start, end = (int(offset) for offset in info["data_offsets"])
            count = int(numpy.prod(shape, dtype=numpy.int64))
            if min(shape, default=0) < 0 or start < 0 or end - start != count * dtype.itemsize \
                    or body + end > len(data):
                raise ValueError(f"tensor {name!r}: data_offsets {[start, end]} do not fit its shape {shape} "
                                 f"and dtype {info['dtype']} in a file of {len(data)} bytes")
            array = numpy.frombuffer(data, dtype=dtype, count=count, offset=body + start).reshape(shape)
            arrays[name] = bfloat16_to_float32(array) if info["dtype"] == "BF16" \
                else array.astype(dtype.newbyteorder("="))
        return arrays
    except (struct.error, UnicodeDecodeError, ValueError, KeyError, TypeError, OverflowError,
            RecursionError) as parse_error:
        raise error(path, f"not a valid safetensors file; is it truncated or corrupted? "
                          f"({type(parse_error).__name__}: {parse_error})") from None


def weights_file_bytes(arrays: Mapping[str, numpy.ndarray], metadata: Mapping[str, str] | None = None,
                       dtype=None) -> bytes:
    """A safetensors file of host arrays; with `dtype` ("float32", "float16", "bfloat16", ...) floating arrays are
    stored in that dtype (bf16 rounded to nearest even). The tensors are laid out by name, 8-byte aligned header."""
    if dtype is not None and dtype not in STORAGE_DTYPES:
        dtype = numpy.dtype(dtype).name
    if dtype is not None and dtype not in STORAGE_DTYPES:
        raise ValueError(f"cannot store weights as {dtype!r} (choose one of {', '.join(STORAGE_DTYPES)})")
    codes = {numpy.dtype(code).newbyteorder("<"): name for name, code in SAFETENSORS_DTYPES.items() if name != "BF16"}
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    chunks, offset = [], 0
    for name in sorted(arrays):
        array = numpy.asarray(arrays[name])
        if dtype is not None and array.dtype.kind == "f":
            if dtype == backend.bfloat16:
                stored, code = float32_to_bfloat16(array.astype(numpy.float32)), "BF16"
            else:
                stored = array.astype(dtype)
                code = codes[stored.dtype.newbyteorder("<")]
        else:
            stored, code = array, codes[array.dtype.newbyteorder("<")]
        raw = numpy.ascontiguousarray(stored).astype(stored.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


# ---- checkpoints -----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Checkpoint:
    """What `load_checkpoint` returns: model tensors, and the states and settings saved beside them."""

    path: Path
    model: dict[str, Tensor]
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    step: int = 0
    extra: dict[str, Any] | None = None


def save_checkpoint(directory: PathLike, model_state: Mapping[str, Any], optimizer_state: Mapping | None = None,
                    scheduler_state: Mapping | None = None, rng_state: Mapping | None = None,
                    config: Any = None, step: int = 0, extra: Mapping | None = None) -> Path:
    """Save a training checkpoint into `directory` (created if needed) so that a crash never damages the last one.

    `model_state` is a flat name → Tensor/array dict (e.g. `model.state_dict()`); `optimizer_state` an
    `Optimizer.state_dict()`; `scheduler_state`, `rng_state` (`tt.get_rng_state()`), `config` (a dict or dataclass)
    and `extra` must be JSON-serialisable. Returns the directory."""
    directory = Path(directory)
    arrays = {f"model/{name}": _host_array(value) for name, value in model_state.items()}
    optimizer_json = None
    if optimizer_state is not None:
        optimizer_arrays, optimizer_json = _split_optimizer_state(optimizer_state)
        arrays.update(optimizer_arrays)
    blob = _serialize(arrays, None, directory)
    digest = hashlib.sha256(blob).hexdigest()
    tensors_file = f"checkpoint-{digest[:16]}.safetensors"
    record = {
        "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "step": int(step),
        "tensors_file": tensors_file, "sha256": digest,
        "tensors": {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in arrays.items()},
        "optimizer": optimizer_json, "scheduler": scheduler_state, "rng": rng_state, "config": config, "extra": extra,
    }
    text = _to_json(record)  # before writing anything: a config that is not JSON fails with no file touched
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / tensors_file, blob)
    atomic_write_text(directory / CHECKPOINT_FILE, text)  # the commit point
    _remove_stale_files(directory, keep=tensors_file)
    return directory


def load_checkpoint(directory: PathLike, device: str = "cpu") -> Checkpoint:
    """Load a checkpoint saved by `save_checkpoint`, verifying the tensors file against the JSON record.

    Raises FileNotFoundError (naming the missing file) or CheckpointError (naming the damaged or mismatched file)."""
    directory = Path(directory)
    record_path = directory / CHECKPOINT_FILE
    record, tensors_path, blob = _read_committed(directory, record_path)
    if hashlib.sha256(blob).hexdigest() != record["sha256"]:
        raise CheckpointError(tensors_path, f"SHA-256 checksum mismatch with {CHECKPOINT_FILE} "
                                            f"(the file is truncated or corrupted; {len(blob)} bytes on disk)")
    arrays = _deserialize(blob, tensors_path)
    _check_manifest(arrays, record["tensors"], tensors_path)
    model = {name.removeprefix("model/"): Tensor(array, device=device)
             for name, array in arrays.items() if name.startswith("model/")}
    optimizer = None
    if record["optimizer"] is not None:
        with file_errors(record_path, CheckpointError):
            optimizer = _join_optimizer_state(record["optimizer"], arrays, device)
    return Checkpoint(path=directory, model=model, optimizer=optimizer, scheduler=record["scheduler"],
                      rng=record["rng"], config=record["config"], step=record["step"], extra=record["extra"])


def _read_committed(directory: Path, record_path: Path, attempts: int = 3) -> tuple[dict, Path, bytes]:
    """(record, tensors path, tensors bytes) of one commit. A writer may commit a newer checkpoint between our
    reading the record and its tensors file, and then delete the file we were about to read: read the new
    record and try again (a reader of a live run, such as a sampler, never sees that as a missing file)."""
    record = _read_record(record_path)
    while True:
        tensors_path = path_inside(directory, record["tensors_file"], record_path, '"tensors_file"')
        try:
            return record, tensors_path, read_bytes(tensors_path, f"named by {record_path}")
        except FileNotFoundError:
            newer, attempts = _read_record(record_path), attempts - 1
            if attempts == 0 or newer["tensors_file"] == record["tensors_file"]:
                raise
            record = newer


def check_compatible(checkpoint: Checkpoint, model_state: Mapping[str, Any], check_dtypes: bool = True) -> None:
    """Raise CheckpointError listing every missing or unexpected name and every shape (and dtype) mismatch between
    a checkpoint's model tensors and `model_state` (e.g. `model.state_dict()`)."""
    problems = [f"missing from the checkpoint: {sorted(set(model_state) - set(checkpoint.model))}"
                if set(model_state) - set(checkpoint.model) else "",
                f"not in the model: {sorted(set(checkpoint.model) - set(model_state))}"
                if set(checkpoint.model) - set(model_state) else ""]
    for name in sorted(set(model_state) & set(checkpoint.model)):
        ours, theirs = _array_of(model_state[name]), checkpoint.model[name].data
        if tuple(ours.shape) != tuple(theirs.shape):
            problems.append(f"{name}: checkpoint shape {tuple(theirs.shape)}, model shape {tuple(ours.shape)}")
        elif check_dtypes and ours.dtype != theirs.dtype:
            problems.append(f"{name}: checkpoint dtype {theirs.dtype}, model dtype {ours.dtype}")
    problems = [problem for problem in problems if problem]
    if problems:
        raise CheckpointError(checkpoint.path, "does not fit this model:\n  " + "\n  ".join(problems))


def _array_of(value):
    return value.data if isinstance(value, Tensor) else value


def _split_optimizer_state(state_dict: Mapping) -> tuple[dict[str, numpy.ndarray], dict[str, Any]]:
    """Arrays to "optim/<index>/<key>" host arrays; counters and hyperparameters to a JSON-ready dict."""
    arrays, counters = {}, {}
    for index, values in state_dict["state"].items():
        counters[str(index)] = {}
        for key, value in values.items():
            if _is_array(value):
                arrays[f"optim/{index}/{key}"] = _host_array(value)
            else:
                counters[str(index)][key] = value
    return arrays, {"param_groups": state_dict["param_groups"], "state": counters}


def _join_optimizer_state(saved: dict[str, Any], arrays: dict[str, numpy.ndarray], device: str) -> dict[str, Any]:
    """The inverse of `_split_optimizer_state`: an `Optimizer.state_dict()` with arrays on `device`. ValueError
    if the JSON part is not what `_split_optimizer_state` writes or lacks a parameter the arrays have."""
    saved = check_type(saved, dict[str, Any], "optimizer")
    for key, hint in OPTIMIZER_RECORD_TYPES.items():
        check_type(saved.get(key), hint, f"optimizer.{key}")
    state = {_parameter_index(index): dict(counters) for index, counters in saved["state"].items()}
    for name, array in arrays.items():
        if name.startswith("optim/"):
            _, index, key = name.split("/", 2)
            if int(index) not in state:
                raise ValueError(f"optimizer.state has no entry {index!r} for the tensor {name!r}")
            state[int(index)][key] = backend.to_device(array, device)
    return {"state": state, "param_groups": saved["param_groups"]}


def _parameter_index(text: str) -> int:
    """A parameter index written as a JSON key ("0", "1", ...); ValueError for anything else."""
    if not text.isdecimal():
        raise ValueError(f"optimizer.state key {text!r} is not a parameter index")
    return int(text)


def _is_array(value) -> bool:
    return isinstance(value, Tensor) or (hasattr(value, "shape") and not isinstance(value, numpy.generic))


def _read_record(path: Path) -> dict[str, Any]:
    """checkpoint.json, parsed, every key checked for its type (`RECORD_TYPES`), format and version checked."""
    require_file(path, f"no checkpoint in {path.parent}")
    record = read_json_fields(path, RECORD_TYPES, required=RECORD_TYPES, error=CheckpointError)
    if record["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(path, f'not a tinytensor checkpoint record (no "format": "{CHECKPOINT_FORMAT}")')
    if record["format_version"] != CHECKPOINT_VERSION:
        raise CheckpointError(path, f"checkpoint format version {record['format_version']}; "
                                    f"this tinytensor reads version {CHECKPOINT_VERSION}")
    return record


def _check_manifest(arrays: dict[str, numpy.ndarray], manifest: dict[str, Any], path: Path) -> None:
    """The tensors file must hold exactly the tensors, dtypes and shapes the JSON record lists."""
    found = {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in arrays.items()}
    if found != manifest:
        differing = sorted(n for n in set(found) | set(manifest) if found.get(n) != manifest.get(n))
        raise CheckpointError(path, f"does not hold the tensors {CHECKPOINT_FILE} lists; differing: {differing[:10]}")


def _remove_stale_files(directory: Path, keep: str) -> None:
    """Delete tensors files the record no longer names and temporary files left by interrupted saves."""
    stale = [*directory.glob("checkpoint-*.safetensors"), *directory.glob(".checkpoint*.tmp")]
    for path in stale:
        if path.name != keep:
            path.unlink(missing_ok=True)
