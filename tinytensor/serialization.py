"""`tinytensor.save` / `tinytensor.load`: torch.save and torch.load, never pickle.

    tt.save(model.state_dict(), "model.safetensors");  model.load_state_dict(tt.load("model.safetensors"))
    tt.save(tensor, "x.safetensors");                   x = tt.load("x.safetensors", map_location="cuda")
    tt.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": 1000,
             "config": {"lr": 6e-4, "dataset": "shakespeare_char"}}, "ckpt.pt")     # nanoGPT's checkpoint

PyTorch pickles whatever it is handed, and unpickling runs code chosen by whoever wrote the file. These write one
safetensors file through `tinytensor.io` instead: a state dict (name → tensor) is stored as it is, so other
safetensors readers see the names; a single tensor under one name; anything else — nested dicts, lists and tuples
of tensors, numbers, strings, booleans and None, as training checkpoints hold — keeps its tensors in the file
(named t0, t1, …) and its structure as JSON in the file's metadata, so `load` rebuilds the same object, with dict
keys that are ints (an optimizer's state) and tuples (its betas) as they were. Nothing else is accepted: a module
or a function raises TypeError. Layer: beside `io`, at the top.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from tinytensor import io
from tinytensor.tensor import Tensor

_KIND_KEY = "tinytensor.save"  # metadata: what was saved, so `load` gives back the same kind of object
_STRUCTURE_KEY = "tinytensor.structure"  # metadata of a nested object: its JSON skeleton
_TENSOR_KEY = "tensor"


def save(obj: Any, f: io.PathLike) -> None:
    """Write a Tensor, a state dict, or a nested checkpoint (dicts, lists, tuples of tensors and plain values) to
    the path `f`, atomically, as safetensors."""
    if isinstance(obj, Tensor):
        io.save({_TENSOR_KEY: obj}, f, metadata={_KIND_KEY: "tensor"})
    elif isinstance(obj, Mapping) and all(isinstance(k, str) and _is_array(v) for k, v in obj.items()):
        io.save(obj, f, metadata={_KIND_KEY: "state_dict"})
    else:
        tensors: dict[str, Any] = {}
        skeleton = _encode(obj, tensors, "obj")
        io.save(tensors, f, metadata={_KIND_KEY: "nested", _STRUCTURE_KEY: json.dumps(skeleton)})


def load(f: io.PathLike, map_location=None, weights_only: bool = True) -> Any:
    """Read what `save` wrote, with every tensor on `map_location` ('cpu' by default, or 'cuda'). `weights_only`
    is accepted for PyTorch's sake: only tensors and plain values are ever rebuilt, never code."""
    tensors = io.load(f, device="cpu" if map_location is None else str(map_location))
    metadata = io.load_metadata(f)
    kind = metadata.get(_KIND_KEY)
    if kind == "tensor" and _TENSOR_KEY in tensors:
        return tensors[_TENSOR_KEY]
    if kind == "nested":
        try:
            skeleton = json.loads(metadata[_STRUCTURE_KEY])
        except (KeyError, TypeError, ValueError):
            raise io.CheckpointError(f, "the saved structure is missing or not JSON") from None
        return _decode(skeleton, tensors, f)
    if kind not in (None, "state_dict"):  # None: a safetensors file from elsewhere, read as a state dict
        raise io.CheckpointError(f, f"unknown kind of saved object {kind!r} in its metadata")
    return tensors


def _is_array(value) -> bool:
    return isinstance(value, Tensor) or (hasattr(value, "dtype") and hasattr(value, "shape"))


def _encode(value: Any, tensors: dict[str, Any], where: str) -> Any:
    """The JSON skeleton of `value`; its tensors go into `tensors` as t0, t1, … (`where` names the spot in errors)."""
    if _is_array(value):
        name = f"t{len(tensors)}"
        tensors[name] = value
        return {"tensor": name}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else {"float": repr(float(value))}  # JSON has no inf or nan
    if isinstance(value, Mapping):
        if not all(isinstance(key, (str, int)) and not isinstance(key, bool) for key in value):
            raise TypeError(f"tt.save: dict keys must be strings or ints, found {list(value)[:3]} at {where}")
        return {"dict": [[key, _encode(item, tensors, f"{where}[{key!r}]")] for key, item in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, tensors, f"{where}[{i}]") for i, item in enumerate(value)]
        return {"tuple" if isinstance(value, tuple) else "list": items}
    raise TypeError(f"tt.save stores tensors, numbers, strings, None and dicts/lists/tuples of them; {where} is a "
                    f"{type(value).__name__} (it writes safetensors, never pickle: save its state_dict() instead)")


def _decode(skeleton: Any, tensors: dict[str, Tensor], path: io.PathLike) -> Any:
    """The object `_encode` described; a skeleton that does not fit the file is a CheckpointError."""
    if skeleton is None or isinstance(skeleton, (bool, int, float, str)):
        return skeleton
    if isinstance(skeleton, dict) and len(skeleton) == 1:
        (kind, body), = skeleton.items()
        if kind == "tensor" and body in tensors:
            return tensors[body]
        if kind == "float" and body in ("inf", "-inf", "nan"):
            return float(body)
        if kind == "dict" and isinstance(body, list) and all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int)) for p in body):
            return {key: _decode(item, tensors, path) for key, item in body}
        if kind in ("list", "tuple") and isinstance(body, list):
            items = [_decode(item, tensors, path) for item in body]
            return items if kind == "list" else tuple(items)
    raise io.CheckpointError(path, f"the saved structure is damaged near {str(skeleton)[:60]!r}")
