"""The `Optimizer` base class: parameter groups, zeroing gradients, and state dicts that `tinytensor.io` can save.

Layer: `tinytensor.optim` sits above the engine and touches only `param.data` and `param.grad.data`, the raw
NumPy/CuPy arrays, so an update records no graph and any object with `.data`, `.grad` and `.requires_grad` (a plain
`Tensor` or an `nn.Parameter`) can be optimized. Subclasses (SGD, Adam, AdamW) write `_update_group`.

The state dict follows PyTorch: per-parameter state is keyed by the parameter's position when the groups are read
in order, and each group's hyperparameters are stored with the list of those positions under "params":

    {"state": {0: {"step": 3, "exp_avg": array, "exp_avg_sq": array}, ...},
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1, 2]}, ...]}

Arrays are the live buffers (references, as in PyTorch); everything else is a Python number, so `tinytensor.io`
can put the arrays in safetensors and the rest in JSON.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tinytensor import backend
from tinytensor.autograd import enable_grad
from tinytensor.tensor import Tensor


class Optimizer:
    """Holds parameter groups and per-parameter state; `step()` updates every parameter that has a gradient.

    `param_groups` is a list of dicts: "params" (a list of tensors) plus hyperparameters such as "lr", which may be
    changed between steps (that is how learning-rate schedulers work). `state[param]` holds that parameter's
    running buffers (raw arrays on the parameter's device) and counters.
    """

    def __init__(self, params: Iterable, defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict = {}  # Tensor hashes by identity, so parameters are safe dict keys
        self.param_groups: list[dict[str, Any]] = []
        self._scratch: dict[tuple, Any] = {}
        for group in _as_groups(params):
            self.add_param_group(group)

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group: its own hyperparameters override the optimizer's defaults."""
        params = group["params"]
        params = [params] if _is_tensor_like(params) else list(params)
        for param in params:
            if not _is_tensor_like(param):
                raise TypeError(f"optimizers update tensors (objects with .data and .grad), got {type(param).__name__}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if seen.intersection(id(p) for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter appears more than once across the parameter groups")
        self.param_groups.append({**self.defaults, **group, "params": params})

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set `.grad` to None (default, frees memory) or fill it with zeros in place."""
        for param in self._params():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.data.fill(0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter whose `.grad` is not None; return `closure()` (re-evaluates the loss) if given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._update_group(group, params)
        return loss

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        """Apply one step to `params` (those of `group` that have a gradient). Subclasses implement it."""
        raise NotImplementedError

    def _in_lanes(self, params: list, update: Callable[[Any, int], None]) -> None:
        """Call `update(param, lane)` for every parameter. On the CPU the parameters are dealt into one lane per
        core and the lanes run in threads: the update is a string of memory-bound NumPy passes, which release the
        GIL, and NumPy runs each pass on one core. Small models stay on one lane (threads would cost more)."""
        lanes = _deal_into_lanes(params, backend.worker_cores()) if _worth_threads(params) else [params]
        if len(lanes) == 1:
            for param in params:
                update(param, 0)
            return
        jobs = [backend.cpu_pool().submit(_run_lane, lane, index, update) for index, lane in enumerate(lanes)]
        for job in jobs:
            job.result()

    def _scratch_like(self, array, lane: int = 0):
        """A scratch array shaped like `array`: a view into one flat buffer per device, dtype and lane, reused by
        every parameter and step so updates allocate nothing (it is never part of the state)."""
        key = (backend.device_of(array), array.dtype, lane)
        buffer = self._scratch.get(key)
        if buffer is None or buffer.size < array.size:
            buffer = self._scratch[key] = backend.array_module(array).empty(array.size, dtype=array.dtype)
        return buffer[: array.size].reshape(array.shape)

    def _params(self) -> list:
        return [p for group in self.param_groups for p in group["params"]]

    # ---- state dicts -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [{hyperparameters..., "params": [indices]}]}, as in PyTorch."""
        index = {id(p): i for i, p in enumerate(self._params())}
        groups = [{**_hyperparameters(g), "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        state = {index[id(p)]: dict(values) for p, values in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters and state saved by `state_dict` (arrays may be Tensors or raw arrays, on any
        device: they are copied to each parameter's device and floating dtype). The groups must hold the same
        number of parameters as when saved, and every state array must have its parameter's shape."""
        saved_groups = state_dict["param_groups"]
        by_index = self._match_groups(saved_groups)
        state = {}
        for key, values in state_dict["state"].items():
            if int(key) not in by_index:
                raise ValueError(f"optimizer state names parameter {key}, but the parameter groups have no such index")
            param = by_index[int(key)]
            state[param] = {name: _load_state_value(param, name, value) for name, value in values.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: tuple(v) if isinstance(v, list) else v for k, v in _hyperparameters(saved).items()})
        self.state = state

    def _match_groups(self, saved_groups: list) -> dict[int, Any]:
        """Map each saved parameter index to this optimizer's parameter at the same position."""
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state dict has {len(saved_groups)} parameter groups, this optimizer has {len(self.param_groups)}")
        by_index = {}
        for number, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {number} has {len(group['params'])} parameters here and "
                                 f"{len(saved['params'])} in the state dict")
            by_index.update({int(i): p for i, p in zip(saved["params"], group["params"])})
        return by_index

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in _hyperparameters(group).items())
            lines.append(f"  group {number}: {len(group['params'])} params, {settings}")
        return "\n".join(lines + [")"])


def _as_groups(params) -> list[dict[str, Any]]:
    """Turn an iterable of tensors into one group, or an iterable of dicts into those groups."""
    if _is_tensor_like(params):
        raise TypeError("params must be an iterable of tensors or of dicts (parameter groups), "
                        "not a single tensor: wrap it in a list")
    items = list(params)
    if not items:
        raise ValueError("the optimizer got an empty parameter list")
    if all(isinstance(item, Mapping) for item in items):
        return [dict(item) for item in items]
    if any(isinstance(item, Mapping) for item in items):
        raise TypeError("params mixes tensors and parameter-group dicts; use one or the other")
    return [{"params": items}]


def _is_tensor_like(value) -> bool:
    return hasattr(value, "data") and hasattr(value, "grad")


def _hyperparameters(group: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "params"}


def _load_state_value(param, name: str, value):
    """A private copy of a saved state entry: arrays go to the parameter's device (and its dtype if floating)."""
    array = value.data if isinstance(value, Tensor) else value
    if isinstance(value, numbers.Number) or not hasattr(array, "shape"):  # counters such as "step"
        return value
    if tuple(array.shape) != tuple(param.data.shape):
        raise ValueError(f"optimizer state {name!r} has shape {tuple(array.shape)}, "
                         f"its parameter has shape {tuple(param.data.shape)}")
    xp = backend.array_module(param.data)
    dtype = param.data.dtype if backend.is_floating(array.dtype) else array.dtype
    return xp.array(backend.to_device(array, backend.device_of(param.data)), dtype=dtype, copy=True)


_THREADING_MIN_ELEMENTS = 1 << 18


def _worth_threads(params: list) -> bool:
    return (backend.worker_cores() > 1 and backend.device_of(params[0].data) == "cpu"
            and sum(p.data.size for p in params) >= _THREADING_MIN_ELEMENTS)


def _deal_into_lanes(params: list, count: int) -> list[list]:
    """Largest first, each into the lightest lane, so the lanes finish together."""
    lanes, loads = [[] for _ in range(count)], [0] * count
    for param in sorted(params, key=lambda p: p.data.size, reverse=True):
        lightest = loads.index(min(loads))
        lanes[lightest].append(param)
        loads[lightest] += param.data.size
    return [lane for lane in lanes if lane]


def _run_lane(lane: list, index: int, update: Callable[[Any, int], None]) -> None:
    for param in lane:
        update(param, index)
