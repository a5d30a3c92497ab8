"""Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), as torch.optim computes them.

For one parameter θ with gradient g at step t (lr γ, betas β1 β2, eps ε, weight decay λ), in PyTorch's order:

    AdamW: θ ← θ(1 − γλ)          Adam: g ← g + λθ
    m ← m + (1 − β1)(g − m)                        (torch's lerp_, = β1·m + (1 − β1)·g)
    v ← β2·v + (1 − β2)·g·g
    denom = √v / √(1 − β2^t) + ε
    θ ← θ − (γ / (1 − β1^t)) · m / denom

This is a memory-bound loop of elementwise passes, so every pass writes in place (`out=`) into the parameter, its
two moment buffers or one scratch array shared by all parameters: a step allocates nothing (Adam with weight decay
allocates the decayed gradient, since `.grad` must not change). Scalars are cast to the parameter's dtype first,
so float32 parameters and buffers stay float32.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tinytensor import backend
from tinytensor.optim.optimizer import Optimizer


class Adam(Optimizer):
    """torch.optim.Adam: state per parameter is "step" (int), "exp_avg" (m) and "exp_avg_sq" (v)."""

    decoupled_weight_decay = False

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        _check_hyperparameters(lr, betas, eps, weight_decay)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def _update_group(self, group: dict[str, Any], params: list) -> None:
        for param in params:
            state = self.state.get(param) or self._init_state(param)
            state["step"] += 1
        self._in_lanes(params, lambda param, lane: self._update_param(
            param.data, param.grad.data, self.state[param], group, lane))

    def _update_param(self, data, grad, state: dict[str, Any], group: dict[str, Any], lane: int = 0) -> None:
        """One step for one parameter array, in place."""
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        xp = backend.array_module(data, grad, op=type(self).__name__)
        cast, step, scratch = data.dtype.type, state["step"], self._scratch_like(data, lane)
        if weight_decay != 0 and self.decoupled_weight_decay:
            xp.multiply(data, cast(1 - lr * weight_decay), out=data)
        elif weight_decay != 0:
            grad = grad + cast(weight_decay) * data
        _update_moments(xp, grad, state["exp_avg"], state["exp_avg_sq"], scratch,
                        cast(1 - beta1), cast(beta2), cast(1 - beta2))
        bias_correction1, bias_correction2 = 1 - beta1**step, 1 - beta2**step
        _apply_step(xp, data, state["exp_avg"], state["exp_avg_sq"], scratch,
                    cast(lr / bias_correction1), cast(bias_correction2**0.5), cast(eps))

    def _init_state(self, param) -> dict[str, Any]:
        xp = backend.array_module(param.data)
        state = self.state[param] = {"step": 0, "exp_avg": xp.zeros_like(param.data),
                                     "exp_avg_sq": xp.zeros_like(param.data)}
        return state


class AdamW(Adam):
    """torch.optim.AdamW: Adam whose weight decay shrinks the parameter directly, θ ← θ(1 − γλ), before the step
    (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", Algorithm 2)."""

    decoupled_weight_decay = True

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _update_moments(xp, grad, exp_avg, exp_avg_sq, scratch, one_minus_beta1, beta2, one_minus_beta2) -> None:
    """m ← m + (1 − β1)(g − m) and v ← β2·v + ((1 − β2)·g)·g, in place, in torch's operation order."""
    xp.subtract(grad, exp_avg, out=scratch)
    scratch *= one_minus_beta1
    exp_avg += scratch
    xp.multiply(grad, one_minus_beta2, out=scratch)
    scratch *= grad
    exp_avg_sq *= beta2
    exp_avg_sq += scratch


def _apply_step(xp, data, exp_avg, exp_avg_sq, scratch, step_size, bias_correction2_sqrt, eps) -> None:
    """θ ← θ − step_size · m / (√v / √(1 − β2^t) + ε), in place."""
    xp.sqrt(exp_avg_sq, out=scratch)
    scratch /= bias_correction2_sqrt
    scratch += eps
    xp.divide(exp_avg, scratch, out=scratch)
    scratch *= step_size
    data -= scratch


def _check_hyperparameters(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    if lr < 0 or eps < 0 or weight_decay < 0:
        raise ValueError(f"Adam needs lr, eps and weight_decay ≥ 0, got {lr}, {eps}, {weight_decay}")
    if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
        raise ValueError(f"Adam needs two betas in [0, 1), got {betas}")
