"""RMSprop (Hinton's lecture 6e; torch.optim.RMSprop): each step is divided by a running root mean square of the
gradient, with PyTorch's options and update rule:

    g ← g + λθ                                      (weight_decay λ ≠ 0)
    v ← αv + (1 − α)g²                              (square_avg, v₀ = 0)
    ṽ ← v − ḡ², with ḡ ← αḡ + (1 − α)g              (centered) else ṽ ← v
    b ← μb + g/(√ṽ + ε); θ ← θ − γb                  (momentum μ ≠ 0)
    θ ← θ − γg/(√ṽ + ε)                              (otherwise)
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinytensor import backend
from tinytensor.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    """torch.optim.RMSprop: state per parameter is "step", "square_avg", and "momentum_buffer" / "grad_avg" when
    momentum / centered are on."""

    def __init__(self, params: Iterable, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum < 0 or not 0 <= alpha <= 1:
            raise ValueError(f"RMSprop needs lr, eps, weight_decay, momentum ≥ 0 and alpha in [0, 1], got lr={lr}, "
                             f"alpha={alpha}, eps={eps}, weight_decay={weight_decay}, momentum={momentum}")
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay, "momentum": momentum,
                    "centered": centered}
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        for param in params:
            cast = param.data.dtype.type  # Python floats as the parameter's dtype: float32 stays float32
            xp = backend.array_module(param.data)
            grad = param.grad.data
            if group["weight_decay"] != 0:
                grad = grad + cast(group["weight_decay"]) * param.data  # a new array: .grad is left as it was
            state = self._state_of(param, group)
            state["step"] += 1
            alpha = cast(group["alpha"])
            square_avg = state["square_avg"]
            square_avg *= alpha
            square_avg += (1 - alpha) * grad * grad
            variance = square_avg
            if group["centered"]:
                state["grad_avg"] *= alpha
                state["grad_avg"] += (1 - alpha) * grad
                variance = square_avg - state["grad_avg"] * state["grad_avg"]
            direction = grad / (xp.sqrt(variance) + cast(group["eps"]))
            if group["momentum"] > 0:
                state["momentum_buffer"] *= cast(group["momentum"])
                state["momentum_buffer"] += direction
                direction = state["momentum_buffer"]
            xp.subtract(param.data, cast(group["lr"]) * direction, out=param.data)

    def _state_of(self, param, group: dict[str, Any]) -> dict:
        """The parameter's state, created at its first step (zeros like the parameter, as PyTorch)."""
        state = self.state.get(param)
        if state is None:
            zeros = backend.array_module(param.data).zeros_like
            state = self.state[param] = {"step": 0, "square_avg": zeros(param.data)}
            if group["momentum"] > 0:
                state["momentum_buffer"] = zeros(param.data)
            if group["centered"]:
                state["grad_avg"] = zeros(param.data)
        return state
