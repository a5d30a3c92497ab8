"""`tinytensor.nn.utils`: helpers that act on a model's parameters as a whole, used by the training loop.

`clip_grad_norm_` rescales all gradients together so their joint norm is at most `max_norm` (Pascanu et al. 2013),
with PyTorch's exact formula, so a training run clips the same steps PyTorch would.
"""
from __future__ import annotations

from collections.abc import Iterable

from tinytensor import backend
from tinytensor.tensor import Tensor


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

