"""Saving and loading tensors and training checkpoints: safetensors for arrays, JSON for everything else. No pickle.

Layer: the top of `tinytensor`, beside `optim`; it uses `backend` (host copies) and `Tensor`, and the rest of the
project (tokenizers, corpora, trainers) shares its `atomic_write*` helpers.

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

import dataclasses
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
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

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A file that cannot be loaded as what it claims to be (corrupted, truncated, mismatched); names the file."""


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


# ---- tensor files ----------------------------------------------------------------------------------------------
def save(state_dict: Mapping[str, Any], path: PathLike, metadata: Mapping[str, Any] | None = None) -> None:
    """Write a flat dict name → Tensor (or NumPy/CuPy array) to a safetensors file, atomically.

    `metadata` maps strings to JSON values and is stored in the file's header (read it with `load_metadata`)."""
    arrays = {name: _host_array(value) for name, value in state_dict.items()}
    atomic_write_bytes(path, _serialize(arrays, _encode_metadata(metadata), path))


def load(path: PathLike, device: str = "cpu") -> dict[str, Tensor]:
    """Read a safetensors file into a dict name → Tensor on `device`; CheckpointError names a damaged file."""
    path = Path(path)
    arrays = _deserialize(_read_bytes(path), path)
    return {name: Tensor(array, device=device) for name, array in arrays.items()}


def load_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata saved with `save` (JSON values decoded), {} if there is none."""
    path = _existing(Path(path))
    try:
        with safetensors.safe_open(str(path), framework="numpy") as file:
            raw = file.metadata() or {}
    except safetensors.SafetensorError as error:
        raise CheckpointError(f"{path} is not a readable safetensors file ({error})") from error
    json_keys = json.loads(raw.pop(JSON_METADATA_KEY, "[]"))
    return {key: json.loads(value) if key in json_keys else value for key, value in raw.items()}


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


def _deserialize(data: bytes, path: Path) -> dict[str, numpy.ndarray]:
    try:
        return safetensors.numpy.load(data)
    except (safetensors.SafetensorError, ValueError, TypeError) as error:
        raise CheckpointError(
            f"{path} is not a valid safetensors file; is it truncated or corrupted? ({error})") from error


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def _read_bytes(path: Path) -> bytes:
    return _existing(path).read_bytes()


def _to_json(value: Any) -> str:
    return json.dumps(value, default=_json_default, indent=1)


def _json_default(value: Any) -> Any:
    """JSON for NumPy scalars (e.g. a float32 lr) and dataclass configs; anything else is an error."""
    if isinstance(value, numpy.generic):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


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
    record = _read_record(directory / CHECKPOINT_FILE)
    tensors_path = directory / record["tensors_file"]
    blob = _read_bytes(tensors_path)
    if hashlib.sha256(blob).hexdigest() != record["sha256"]:
        raise CheckpointError(f"{tensors_path}: SHA-256 checksum mismatch with {CHECKPOINT_FILE} "
                              f"(the file is truncated or corrupted; {len(blob)} bytes on disk)")
    arrays = _deserialize(blob, tensors_path)
    _check_manifest(arrays, record["tensors"], tensors_path)
    model = {name.removeprefix("model/"): Tensor(array, device=device)
             for name, array in arrays.items() if name.startswith("model/")}
    optimizer = None
    if record["optimizer"] is not None:
        optimizer = _join_optimizer_state(record["optimizer"], arrays, device)
    return Checkpoint(path=directory, model=model, optimizer=optimizer, scheduler=record["scheduler"],
                      rng=record["rng"], config=record["config"], step=record["step"], extra=record["extra"])


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
        raise CheckpointError(f"checkpoint {checkpoint.path} does not fit this model:\n  " + "\n  ".join(problems))


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
    """The inverse of `_split_optimizer_state`: an `Optimizer.state_dict()` with arrays on `device`."""
    state = {int(index): dict(counters) for index, counters in saved["state"].items()}
    for name, array in arrays.items():
        if name.startswith("optim/"):
            _, index, key = name.split("/", 2)
            state[int(index)][key] = backend.to_device(array, device)
    return {"state": state, "param_groups": saved["param_groups"]}


def _is_array(value) -> bool:
    return isinstance(value, Tensor) or (hasattr(value, "shape") and not isinstance(value, numpy.generic))


def _read_record(path: Path) -> dict[str, Any]:
    """checkpoint.json, parsed and checked for format and version."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint in {path.parent}: {path} does not exist")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON; is it truncated or corrupted? ({error})") from error
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a tinytensor checkpoint record (no \"format\": \"{CHECKPOINT_FORMAT}\")")
    if record.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {record.get('format_version')}; "
                              f"this tinytensor reads version {CHECKPOINT_VERSION}")
    return record


def _check_manifest(arrays: dict[str, numpy.ndarray], manifest: dict[str, Any], path: Path) -> None:
    """The tensors file must hold exactly the tensors, dtypes and shapes the JSON record lists."""
    found = {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in arrays.items()}
    if found != manifest:
        differing = sorted(n for n in set(found) | set(manifest) if found.get(n) != manifest.get(n))
        raise CheckpointError(f"{path} does not hold the tensors {CHECKPOINT_FILE} lists; differing: {differing[:10]}")


def _remove_stale_files(directory: Path, keep: str) -> None:
    """Delete tensors files the record no longer names and temporary files left by interrupted saves."""
    stale = [*directory.glob("checkpoint-*.safetensors"), *directory.glob(".checkpoint*.tmp")]
    for path in stale:
        if path.name != keep:
            path.unlink(missing_ok=True)
