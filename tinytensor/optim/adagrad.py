"""Adagrad (Duchi, Hazan & Singer 2011; torch.optim.Adagrad): each coordinate's step shrinks with the square root of
the sum of its squared gradients so far, with PyTorch's options and update rule:

    γₜ ← γ / (1 + (t − 1)·η)                          (lr_decay η)
    g ← g + λθ                                      (weight_decay λ ≠ 0)
    s ← s + g²                                      (sum, s₀ = initial_accumulator_value)
    θ ← θ − γₜ·g / (√s + ε)
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinytensor import backend
from tinytensor.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    """torch.optim.Adagrad: state per parameter is "step" and "sum" (created with the optimizer, as PyTorch)."""

    def __init__(self, params: Iterable, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        if min(lr, lr_decay, weight_decay, initial_accumulator_value, eps) < 0:
            raise ValueError(f"Adagrad needs lr, lr_decay, weight_decay, initial_accumulator_value and eps ≥ 0, got "
                             f"{lr}, {lr_decay}, {weight_decay}, {initial_accumulator_value}, {eps}")
        defaults = {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "eps": eps}
        super().__init__(params, defaults)
        for group in self.param_groups:
            for param in group["params"]:
                xp = backend.array_module(param.data)
                self.state[param] = {"step": 0, "sum": xp.full_like(param.data, group["initial_accumulator_value"])}

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        for param in params:
            cast = param.data.dtype.type  # Python floats as the parameter's dtype: float32 stays float32
            xp = backend.array_module(param.data)
            state = self.state[param]
            state["step"] += 1
            grad = param.grad.data
            if group["weight_decay"] != 0:
                grad = grad + cast(group["weight_decay"]) * param.data  # a new array: .grad is left as it was
            state["sum"] += grad * grad
            step_size = cast(group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"]))
            xp.subtract(param.data, step_size * grad / (xp.sqrt(state["sum"]) + cast(group["eps"])), out=param.data)
