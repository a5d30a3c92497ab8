"""Learning-rate schedules: pure functions of the step, and PyTorch-style schedulers that apply them to an optimizer.

The pure functions answer "what is the learning rate at step t" and can be used directly in a training loop:
`warmup_cosine` (nanoGPT), `noam` (Vaswani et al. 2017, eq. 3) and `constant`.

A scheduler follows `torch.optim.lr_scheduler`: constructing it sets each group's lr for step 0, and each
`scheduler.step()` (call it after `optimizer.step()`) advances `last_epoch` by one and writes the new lr into every
parameter group. Each group's lr at construction is remembered as its "initial_lr" (`base_lrs`). Every schedule here
is a closed form of `last_epoch` (StepLR, MultiStepLR, ExponentialLR, LinearLR, CosineAnnealingLR, LambdaLR and the
ones above), so `state_dict()` is a small JSON-friendly dict and resuming is exact. `ReduceLROnPlateau` is the one
that reacts to a metric instead (`scheduler.step(val_loss)`); its state is a few numbers too. All of PyTorch's
schedulers here set the same rates as torch's, step by step (tests/fixtures/make_lr_scheduler_fixture.py).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def warmup_cosine(step: int, max_lr: float, warmup_steps: int, decay_steps: int, min_lr: float) -> float:
    """nanoGPT's schedule: linear warmup max_lr·(step + 1)/(warmup_steps + 1) for step < warmup_steps, then a cosine
    from max_lr down to min_lr reached at decay_steps, then min_lr."""
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step >= decay_steps:
        return min_lr
    decay_ratio = (step - warmup_steps) / (decay_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (max_lr - min_lr)


def noam(step: int, d_model: int, warmup_steps: int, factor: float = 1.0) -> float:
    """"Attention Is All You Need", eq. 3: factor·d_model^−0.5·min(step^−0.5, step·warmup_steps^−1.5), step ≥ 1.

    It rises linearly for warmup_steps steps, peaks at step = warmup_steps, then decays as 1/√step."""
    if step < 1:
        raise ValueError(f"noam counts steps from 1, got step {step}")
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def constant(step: int, lr: float) -> float:
    """The same lr at every step (the schedule to use when you want none)."""
    return lr


class LRScheduler:
    """Base class: subclasses return each group's lr for `self.last_epoch` from `get_lr()`."""

    def __init__(self, optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self._last_lr: list[float] = []
        self.step()

    def get_lr(self) -> list[float]:
        """Each group's lr at step `self.last_epoch`."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and write the new lr into every parameter group."""
        self.last_epoch += 1
        self._apply(self.get_lr())

    def get_last_lr(self) -> list[float]:
        """The lr of each group as this scheduler last set it."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer and LambdaLR's functions: JSON-friendly numbers and lists."""
        return {key: value for key, value in vars(self).items() if key not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore `state_dict()` and put the saved lr back into the optimizer's groups."""
        self.__dict__.update(state_dict)
        self._apply(list(self._last_lr))

    def _apply(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs


class LambdaLR(LRScheduler):
    """torch's LambdaLR: lr = initial_lr · lr_lambda(step); one function for all groups, or one per group."""

    def __init__(self, optimizer, lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]]) -> None:
        groups = len(optimizer.param_groups)
        self.lr_lambdas = list(lr_lambda) if isinstance(lr_lambda, Sequence) else [lr_lambda] * groups
        if len(self.lr_lambdas) != groups:
            raise ValueError(f"LambdaLR got {len(self.lr_lambdas)} lr_lambdas for {groups} parameter groups")
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base * fn(self.last_epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas)]


class WarmupCosineLR(LRScheduler):
    """`warmup_cosine` per group, from the group's initial lr down to min_lr (one value, or one per group)."""

    def __init__(self, optimizer, warmup_steps: int, decay_steps: int, min_lr: float | Sequence[float] = 0.0) -> None:
        if not 0 <= warmup_steps <= decay_steps:
            raise ValueError(f"need 0 ≤ warmup_steps ≤ decay_steps, got {warmup_steps} and {decay_steps}")
        groups = len(optimizer.param_groups)
        self.warmup_steps, self.decay_steps = warmup_steps, decay_steps
        self.min_lrs = list(min_lr) if isinstance(min_lr, Sequence) else [min_lr] * groups
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [warmup_cosine(self.last_epoch, base, self.warmup_steps, self.decay_steps, min_lr)
                for base, min_lr in zip(self.base_lrs, self.min_lrs)]


class NoamLR(LRScheduler):
    """`noam` for every group: the lr of optimizer step k (k = 1, 2, …) is noam(k, d_model, warmup_steps, factor).

    The schedule sets the lr outright (the groups' own lr is ignored), as in the paper."""

    def __init__(self, optimizer, d_model: int, warmup_steps: int, factor: float = 1.0) -> None:
        self.d_model, self.warmup_steps, self.factor = d_model, warmup_steps, factor
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        lr = noam(self.last_epoch + 1, self.d_model, self.warmup_steps, self.factor)
        return [lr for _ in self.base_lrs]


class ConstantLR(LRScheduler):
    """torch's ConstantLR: lr = initial_lr · factor for the first total_iters steps, then initial_lr.

    With factor=1.0 (or total_iters=0) it keeps every group's lr constant."""

    def __init__(self, optimizer, factor: float = 1.0 / 3, total_iters: int = 5) -> None:
        if not 0 <= factor <= 1:
            raise ValueError(f"ConstantLR needs 0 ≤ factor ≤ 1, got {factor}")
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        scale = self.factor if self.last_epoch < self.total_iters else 1.0
        return [base * scale for base in self.base_lrs]


class StepLR(LRScheduler):
    """torch's StepLR: lr = initial_lr · gamma^⌊step / step_size⌋."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """torch's MultiStepLR: lr = initial_lr · gamma^(number of milestones reached)."""

    def __init__(self, optimizer, milestones: Sequence[int], gamma: float = 0.1) -> None:
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        reached = sum(self.last_epoch >= milestone for milestone in self.milestones)
        return [base * self.gamma**reached for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """torch's ExponentialLR: lr = initial_lr · gamma^step."""

    def __init__(self, optimizer, gamma: float) -> None:
        self.gamma = gamma
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class LinearLR(LRScheduler):
    """torch's LinearLR: the factor moves linearly from start_factor to end_factor over total_iters steps."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5) -> None:
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR needs 0 < start_factor ≤ 1 and 0 ≤ end_factor ≤ 1, got {start_factor} and "
                             f"{end_factor}")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        done = min(self.last_epoch, self.total_iters) / self.total_iters if self.total_iters else 1.0
        factor = self.start_factor + (self.end_factor - self.start_factor) * done
        return [base * factor for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """torch's CosineAnnealingLR (SGDR without restarts, Loshchilov & Hutter 2017, eq. 5), in closed form:
    lr = eta_min + (initial_lr − eta_min)·(1 + cos(π·step / T_max))/2."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803 - PyTorch's name
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        cosine = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class ReduceLROnPlateau:
    """torch's ReduceLROnPlateau: `step(metric)` after each evaluation; when the metric has not improved (by more
    than `threshold`, relative or absolute) for more than `patience` evaluations, every group's lr is multiplied by
    `factor` (not below `min_lr`), then `cooldown` evaluations pass before counting again."""

    def __init__(self, optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | Sequence[float] = 0.0, eps: float = 1e-8) -> None:
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs") or not 0 <= factor < 1:
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', threshold_mode 'rel' or 'abs' and "
                             f"factor in [0, 1); got {mode!r}, {threshold_mode!r}, {factor}")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown, self.eps = threshold, threshold_mode, cooldown, eps
        groups = len(optimizer.param_groups)
        self.min_lrs = list(min_lr) if isinstance(min_lr, Sequence) else [min_lr] * groups
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def step(self, metrics) -> None:
        current = float(metrics)
        self.last_epoch += 1
        if self._improves(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce()
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _improves(self, current: float) -> bool:
        sign = 1 if self.mode == "min" else -1
        margin = abs(self.best) * self.threshold if self.threshold_mode == "rel" else self.threshold
        return sign * (self.best - current) > margin if math.isfinite(self.best) else sign * current < math.inf

    def _reduce(self) -> None:
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            new_lr = max(group["lr"] * self.factor, min_lr)
            if group["lr"] - new_lr > self.eps:
                group["lr"] = new_lr

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if key != "optimizer"}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.__dict__.update(state_dict)
