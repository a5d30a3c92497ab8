"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay (torch.optim.SGD).

The update for one parameter θ with gradient g, as in PyTorch's documentation:

    g ← g + λθ                                  (weight_decay λ ≠ 0)
    b ← g on the first step, else μb + (1 − τ)g  (momentum μ ≠ 0, dampening τ)
    g ← g + μb if nesterov else b
    θ ← θ − γg                                  (lr γ)
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinytensor import backend
from tinytensor.optim.optimizer import Optimizer


class SGD(Optimizer):
    """torch.optim.SGD: state per parameter is "momentum_buffer" (only when momentum ≠ 0)."""

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD needs lr, momentum and weight_decay ≥ 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov}
        super().__init__(params, defaults)

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
        for param in params:
            cast = param.data.dtype.type  # Python floats as the parameter's dtype: float32 stays float32
            grad = param.grad.data
            if weight_decay != 0:
                grad = grad + cast(weight_decay) * param.data  # a new array: .grad itself is left as it was
            if momentum != 0:
                grad = self._momentum(param, grad, cast(momentum), cast(1 - dampening), nesterov)
            backend.array_module(param.data).subtract(param.data, cast(lr) * grad, out=param.data)

    def _momentum(self, param, grad, momentum, one_minus_dampening, nesterov: bool):
        """Update the parameter's momentum buffer b and return the direction to step along."""
        state = self.state.setdefault(param, {})
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = state["momentum_buffer"] = grad.copy()
        else:
            buffer *= momentum
            buffer += one_minus_dampening * grad
        return grad + momentum * buffer if nesterov else buffer
