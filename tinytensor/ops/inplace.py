"""In-place ops (`x.add_(y)`, `x += y`, `x.zero_()`, …) with PyTorch's rules, all through one door: `write`.

Each in-place op is its out-of-place op plus a decision about where the result goes:

- A leaf that requires grad (a parameter) cannot be changed in place while graphs are recorded: its `.grad`
  would no longer describe it. Under `no_grad` (an optimizer step, re-initialisation) it can.
- When the result belongs in a graph (the tensor, or the other operand, requires grad and grad mode is on), the
  tensor takes the result's new array and its history, so its gradient flows through the op. Its old array is
  left as it was: nodes that saved it still see the values they saw.
- Otherwise the result is written into the tensor's own memory, so views and aliases (a `.detach()`, a
  state-dict entry) see it, as in PyTorch; `autograd.note_in_place_write` then makes any graph that saved that
  memory earlier refuse to run backward instead of computing a wrong gradient (PyTorch's version counter).
"""
from __future__ import annotations

from collections.abc import Callable

from tinytensor import autograd, backend
from tinytensor.ops._util import lift
from tinytensor.ops.activation import relu
from tinytensor.ops.creation import rand, randn
from tinytensor.ops.elementwise import (abs, add, addcdiv, addcmul, cast, clamp, clone, div, exp, lerp, log,
                                        masked_fill, mul, neg, sigmoid, sqrt, sub, tanh, to_device, where)
from tinytensor.ops.rounding import floor_divide, remainder
from tinytensor.ops.scatter import scatter, scatter_add
from tinytensor.ops.shape import expand
from tinytensor.ops.unary import clamp_max, clamp_min, floor, round
from tinytensor.tensor import Tensor


def write(target: Tensor, compute: Callable[[Tensor], Tensor], op: str) -> Tensor:
    """Make `target` hold `compute(target)` in place, by the rules above; return `target`."""
    recording = autograd.is_grad_enabled()
    if recording and target.is_leaf and target.requires_grad:
        raise RuntimeError(f"{op}: a leaf tensor that requires grad cannot be changed in place while gradients are "
                           "recorded; wrap the update in tt.no_grad(), or work on a .clone()")
    result = compute(target)
    if result.shape != target.shape:
        raise RuntimeError(f"{op}: the result has shape {result.shape}, but an in-place op must keep the tensor's "
                           f"shape {target.shape}")
    if recording and (target.requires_grad or result.requires_grad):
        if not result.requires_grad:  # a constant replaces a tensor in a graph: its past gets zero gradient
            result = where(_everywhere(target), result, target)
        result = cast(result, target.dtype)
        if not getattr(result.data.flags, "writeable", True):  # a broadcast view must not become the tensor's array
            result = clone(result)
        target.data, target._node, target._requires_grad = result.data, result._node, True
        return target
    target.data[...] = result.data
    autograd.note_in_place_write(target.data)
    return target


def add_(target: Tensor, other, alpha=1) -> Tensor:
    return write(target, lambda t: add(t, other if alpha == 1 else mul(other, alpha)), "add_")


def sub_(target: Tensor, other, alpha=1) -> Tensor:
    return write(target, lambda t: sub(t, other if alpha == 1 else mul(other, alpha)), "sub_")


def mul_(target: Tensor, other) -> Tensor:
    return write(target, lambda t: mul(t, other), "mul_")


def div_(target: Tensor, other) -> Tensor:
    return write(target, lambda t: div(t, other), "div_")


def clamp_(target: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
    return write(target, lambda t: clamp(t, min, max), "clamp_")


def clamp_min_(target: Tensor, min) -> Tensor:  # noqa: A002 - PyTorch's name
    return write(target, lambda t: clamp_min(t, min), "clamp_min_")


def clamp_max_(target: Tensor, max) -> Tensor:  # noqa: A002 - PyTorch's name
    return write(target, lambda t: clamp_max(t, max), "clamp_max_")


def abs_(target: Tensor) -> Tensor:
    return write(target, abs, "abs_")


def sqrt_(target: Tensor) -> Tensor:
    return write(target, sqrt, "sqrt_")


def exp_(target: Tensor) -> Tensor:
    return write(target, exp, "exp_")


def log_(target: Tensor) -> Tensor:
    return write(target, log, "log_")


def neg_(target: Tensor) -> Tensor:
    return write(target, neg, "neg_")


def sigmoid_(target: Tensor) -> Tensor:
    return write(target, sigmoid, "sigmoid_")


def tanh_(target: Tensor) -> Tensor:
    return write(target, tanh, "tanh_")


def relu_(target: Tensor) -> Tensor:
    return write(target, relu, "relu_")


def floor_(target: Tensor) -> Tensor:
    return write(target, floor, "floor_")


def round_(target: Tensor, decimals: int = 0) -> Tensor:
    return write(target, lambda t: round(t, decimals), "round_")


def remainder_(target: Tensor, other) -> Tensor:
    return write(target, lambda t: remainder(t, other), "remainder_")


def floor_divide_(target: Tensor, other) -> Tensor:
    return write(target, lambda t: floor_divide(t, other), "floor_divide_")


def lerp_(target: Tensor, end, weight) -> Tensor:
    return write(target, lambda t: lerp(t, end, weight), "lerp_")


def addcmul_(target: Tensor, tensor1, tensor2, value=1) -> Tensor:
    return write(target, lambda t: addcmul(t, tensor1, tensor2, value=value), "addcmul_")


def addcdiv_(target: Tensor, tensor1, tensor2, value=1) -> Tensor:
    return write(target, lambda t: addcdiv(t, tensor1, tensor2, value=value), "addcdiv_")


def masked_fill_(target: Tensor, mask, value) -> Tensor:
    return write(target, lambda t: masked_fill(t, mask, value), "masked_fill_")


def fill_(target: Tensor, value) -> Tensor:
    return write(target, lambda t: masked_fill(t, _everywhere(t), value), "fill_")


def zero_(target: Tensor) -> Tensor:
    return fill_(target, 0)


def copy_(target: Tensor, source) -> Tensor:
    """Copy `source`'s values in (broadcast to the tensor's shape, cast to its dtype, moved to its device)."""
    source = lift(source)
    if source.device != target.device:
        source = to_device(source, target.device)
    return write(target, lambda t: expand(source, *t.shape), "copy_")


def normal_(target: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    return write(target, lambda t: randn(*t.shape, generator=generator, dtype=_float(t), device=t.device) * std + mean,
                 "normal_")


def uniform_(target: Tensor, low: float = 0.0, high: float = 1.0, generator=None) -> Tensor:
    return write(target, lambda t: rand(*t.shape, generator=generator, dtype=_float(t), device=t.device)
                 * (high - low) + low, "uniform_")


def scatter_(target: Tensor, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:
    return write(target, lambda t: scatter(t, dim, index, src, value=value, reduce=reduce), "scatter_")


def scatter_add_(target: Tensor, dim: int, index, src: Tensor) -> Tensor:
    return write(target, lambda t: scatter_add(t, dim, index, src), "scatter_add_")


def _everywhere(t: Tensor) -> Tensor:
    """A True mask on t's device (a Python True would be lifted onto the CPU)."""
    return Tensor._wrap(t.xp.asarray(True))


def _float(t: Tensor):
    return t.dtype if backend.is_floating(t.dtype) else backend.DEFAULT_FLOAT
