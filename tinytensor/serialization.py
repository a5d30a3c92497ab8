"""`tinytensor.save` / `tinytensor.load`: torch.save and torch.load for state dicts and tensors, never pickle.

    tt.save(model.state_dict(), "model.safetensors");  model.load_state_dict(tt.load("model.safetensors"))
    tt.save(tensor, "x.safetensors");                   x = tt.load("x.safetensors", map_location="cuda")

PyTorch pickles whatever it is handed, and unpickling runs code chosen by whoever wrote the file. These write
safetensors through `tinytensor.io` instead, so they take what safetensors holds: a flat dict of name → Tensor
(a state dict) or a single Tensor; anything else is refused with a TypeError. For model + optimizer + step
checkpoints use `tinytensor.io.save_checkpoint`, which keeps the rest as JSON. Layer: beside `io`, at the top.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tinytensor import io
from tinytensor.tensor import Tensor

_KIND_KEY = "tinytensor.save"  # metadata: what was saved, so `load` gives back the same kind of object
_TENSOR_KEY = "tensor"


def save(obj: Tensor | Mapping[str, Any], f: io.PathLike) -> None:
    """Write a state dict (names → Tensors or arrays) or one Tensor to the path `f`, atomically (safetensors)."""
    if isinstance(obj, Tensor):
        io.save({_TENSOR_KEY: obj}, f, metadata={_KIND_KEY: "tensor"})
        return
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and hasattr(v, "dtype") for k, v in obj.items()):
        raise TypeError(f"tt.save stores a Tensor or a flat dict of name -> Tensor (a state dict), not "
                        f"{type(obj).__name__} with other values: it writes safetensors, never pickle. Save "
                        "model and optimizer together with tinytensor.io.save_checkpoint")
    io.save(obj, f, metadata={_KIND_KEY: "state_dict"})


def load(f: io.PathLike, map_location=None, weights_only: bool = True) -> Tensor | dict[str, Tensor]:
    """Read what `save` wrote: the Tensor, or the dict of Tensors, on `map_location` ('cpu' by default, or
    'cuda'). `weights_only` is accepted for PyTorch's sake; nothing but tensors is ever loaded."""
    tensors = io.load(f, device="cpu" if map_location is None else str(map_location))
    if io.load_metadata(f).get(_KIND_KEY) == "tensor":
        return tensors[_TENSOR_KEY]
    return tensors
