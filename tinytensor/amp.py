"""`tinytensor.amp` (also `tinytensor.cuda.amp`): PyTorch's mixed-precision habits.

    scaler = torch.cuda.amp.GradScaler(enabled=(dtype == "float16"))
    with torch.amp.autocast(device_type="cuda", dtype=torch.bfloat16):
        logits, loss = model(x, y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()

`autocast` is accepted and leaves the computation in the tensors' own dtype: NumPy and CuPy have no bfloat16
arithmetic here, and float16 matmuls on a CPU are slower, not faster. So a program written for AMP runs unchanged,
at full precision. `GradScaler` is PyTorch's dynamic loss scaler and works as documented there: it multiplies the
loss by the scale, divides the gradients back before the step, skips a step whose gradients hold inf or NaN, and
halves the scale after such a step or doubles it after `growth_interval` good ones.
"""
from __future__ import annotations

import functools
import math

from tinytensor import backend


class autocast:  # noqa: N801 - PyTorch's name
    """Accepted, with PyTorch's arguments; computes in the tensors' own dtypes (see the module docstring)."""

    def __init__(self, device_type: str = "cuda", dtype=None, enabled: bool = True, cache_enabled=None) -> None:
        self.device_type, self.dtype, self.enabled = device_type, dtype, enabled

    def __enter__(self) -> autocast:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with self:
                return function(*args, **kwargs)

        return wrapper


class GradScaler:
    """torch.amp.GradScaler: dynamic loss scaling (a pass-through when `enabled=False`)."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        self._enabled = enabled
        self._scale, self._growth_factor, self._backoff_factor = float(init_scale), growth_factor, backoff_factor
        self._growth_interval, self._growth_tracker = growth_interval, 0
        self._unscaled: dict[int, bool] = {}  # id(optimizer) -> found inf or NaN while unscaling

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        return self._scale if self._enabled else 1.0

    def scale(self, outputs):
        """The loss (or tensors) multiplied by the current scale, so small gradients survive low precision."""
        return outputs * self._scale if self._enabled else outputs

    def unscale_(self, optimizer) -> None:
        """Divide the optimizer's gradients by the scale, in place (once per step), noting any inf or NaN."""
        if not self._enabled:
            return
        if id(optimizer) in self._unscaled:
            raise RuntimeError("unscale_() was already called on this optimizer since the last update()")
        found = False
        for group in optimizer.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    grad = param.grad.data
                    grad *= grad.dtype.type(1.0 / self._scale)
                    found = found or not bool(backend.array_module(grad).isfinite(grad).all())
        self._unscaled[id(optimizer)] = found

    def step(self, optimizer, *args, **kwargs):
        """optimizer.step() unless the (unscaled) gradients hold inf or NaN, in which case the step is skipped."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if id(optimizer) not in self._unscaled:
            self.unscale_(optimizer)
        return None if self._unscaled[id(optimizer)] else optimizer.step(*args, **kwargs)

    def update(self, new_scale: float | None = None) -> None:
        """Back off after a skipped step, grow after `growth_interval` good ones (or take `new_scale`)."""
        if not self._enabled:
            return
        found_inf = any(self._unscaled.values())
        self._unscaled.clear()
        if new_scale is not None:
            self._scale = float(new_scale)
        elif found_inf:
            self._scale *= self._backoff_factor
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self._growth_interval:
                self._scale = min(self._scale * self._growth_factor, math.inf)
                self._growth_tracker = 0

    def state_dict(self) -> dict:
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state: dict) -> None:
        self._scale, self._growth_factor = float(state["scale"]), state["growth_factor"]
        self._backoff_factor, self._growth_interval = state["backoff_factor"], state["growth_interval"]
        self._growth_tracker = state["_growth_tracker"]


def compile(model=None, **options):  # noqa: A001 - PyTorch's name
    """torch.compile: tinytensor runs eagerly, so the model (or function) comes back unchanged; usable as a
    decorator with or without options."""
    if model is None:
        return lambda function: function
    return model


__all__ = ["GradScaler", "autocast", "compile"]
