"""`tinytensor.nn.utils`: helpers that act on a model's parameters as a whole, used by the training loop, and
`nn.utils.rnn.pad_sequence`.

`clip_grad_norm_` rescales all gradients together so their joint norm is at most `max_norm` (Pascanu et al. 2013),
with PyTorch's exact formula, so a training run clips the same steps PyTorch would. `clip_grad_value_` clamps each
gradient element instead; `parameters_to_vector`/`vector_to_parameters` flatten parameters into one vector and back.
"""
from __future__ import annotations

from collections.abc import Iterable

from tinytensor import backend, ops
from tinytensor.nn.utils import rnn
from tinytensor.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "rnn", "vector_to_parameters"]


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale every gradient by min(1, max_norm/(total_norm + 1e-6)); return total_norm, measured before clipping.

    total_norm is the `norm_type`-norm of all gradients seen as one vector (`math.inf`: the largest |g|).
    Parameters without a gradient are skipped. The scale is applied with new arrays (`grad.data = grad.data·c`)
    so a gradient array shared with anything else is never mutated. Everything stays on the device: no sync.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    xp = backend.array_module(*(g.data for g in grads), op="clip_grad_norm_")
    norm_type = float(norm_type)
    per_grad = xp.stack([xp.linalg.norm(g.data.reshape(-1), ord=norm_type) for g in grads])
    total = xp.asarray(xp.linalg.norm(per_grad, ord=norm_type))
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total {norm_type}-norm of the gradients is {float(total)}; "
                           "pass error_if_nonfinite=False to clip anyway")
    clip_coef = xp.minimum(max_norm / (total + 1e-6), 1.0)  # Python scalars are weak: float32 stays float32
    if backend.device_of(total) == "cpu" and clip_coef >= 1:
        return Tensor._wrap(total)  # nothing to scale (checked on the CPU only: on a GPU it would cost a sync)
    for grad in grads:
        grad.data = grad.data * clip_coef.astype(grad.dtype)
    return Tensor._wrap(total)



def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clamp every gradient element to [−clip_value, clip_value], in place (new arrays, as clip_grad_norm_)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for param in params:
        if param.grad is not None:
            param.grad.data = backend.array_module(param.grad.data).clip(param.grad.data, -clip_value, clip_value)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and joined into one vector (differentiable, as PyTorch's)."""
    return ops.cat([param.reshape(-1) for param in parameters])


def vector_to_parameters(vector: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of `vector` into the parameters' data (shapes as they are; nothing recorded)."""
    start = 0
    for param in parameters:
        count = param.numel()
        if start + count > vector.numel():
            raise ValueError(f"vector_to_parameters: the vector has {vector.numel()} elements, fewer than the "
                             "parameters hold")
        param.data = vector.data[start:start + count].reshape(param.shape).astype(param.dtype, copy=True)
        start += count
    if start != vector.numel():
        raise ValueError(f"vector_to_parameters: the vector has {vector.numel()} elements, the parameters {start}")
