"""Check analytic gradients against central finite differences, in float64.

The scalar that gets differentiated is a *random projection* of the outputs, L = Σ out ⊙ R with R drawn from a
normal distribution. Checking the plain sum would hide a broken softmax or layer-norm backward: those outputs
sum to a constant, so d(sum)/dx is zero whether or not the backward is right (DeZero's trap).

    tt.gradcheck(lambda x, w: F.layer_norm(x, (4,), w), [x, w])   # True, or raises GradcheckError

`gradgradcheck` checks second derivatives the same way: it gradchecks the function that maps the inputs and
random output weights v to the gradients ∂⟨fn(x), v⟩/∂x, computed by `autograd.grad(..., create_graph=True)`.

    tt.gradgradcheck(lambda x: F.softmax(x, -1), [x])          # True, or raises GradcheckError

Full mode perturbs every element of every input that requires grad: ∂L/∂x_i ≈ (L(x + εe_i) − L(x − εe_i))/2ε.
Fast mode checks one random direction v per input: (L(x + εv) − L(x − εv))/2ε against ⟨∇L, v⟩, which costs two
forward passes instead of two per element and still catches almost every wrong backward.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy

from tinytensor import autograd, backend
from tinytensor.autograd import enable_grad, no_grad
from tinytensor.tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences; the message names the worst element."""


def gradcheck(fn: Callable, inputs: Sequence[Tensor] | Tensor, *, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, fast: bool = False, seed: int = 0) -> bool:
    """True when `fn`'s backward matches finite differences for every input that requires grad; else raises.

    `fn` takes the inputs and returns a Tensor or a tuple of Tensors; it must be deterministic (turn dropout
    off). Inputs that require grad must be float64: float32 finite differences are too noisy to prove anything.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    for i, t in checked:
        if t.dtype != backend.float64:
            raise TypeError(f"gradcheck: input {i} is {t.dtype}; use float64 inputs for finite differences")
        if not t.is_leaf:
            raise ValueError(f"gradcheck: input {i} was made by an op ({type(t._node).__name__}), so backward "
                             "leaves its .grad empty; pass a leaf, e.g. tt.tensor(data, device=device, "
                             "requires_grad=True) rather than tt.tensor(data, requires_grad=True).to(device)")
    rng = numpy.random.default_rng(seed)
    projections = _draw_projections(fn(*inputs), rng)

    def objective() -> float:
        with no_grad():
            return _project(fn(*inputs), projections)

    analytic = _analytic_gradients(fn, inputs, checked, projections)
    for (position, t), grad in zip(checked, analytic):
        if fast:
            _check_direction(t, grad, objective, position, eps, atol, rtol, rng)
        else:
            _check_every_element(t, grad, objective, position, eps, atol, rtol)
    return True


def _as_outputs(result) -> list[Tensor]:
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    return [o for o in outputs if isinstance(o, Tensor) and backend.is_floating(o.dtype)]


def _draw_projections(result, rng) -> list:
    return [backend.to_device(rng.standard_normal(o.shape), o.device) for o in _as_outputs(result)]


def _project(result, projections) -> float:
    return sum(float((o.data * r).sum()) for o, r in zip(_as_outputs(result), projections))


def _analytic_gradients(fn, inputs, checked, projections) -> list:
    """∂⟨fn(inputs), projections⟩/∂t for every checked input t, through `autograd.grad`: the inputs' `.grad` are
    left as the caller had them, as PyTorch's gradcheck does."""
    outputs = _as_outputs(fn(*inputs))
    total = None
    for out, projection in zip(outputs, projections):
        term = (out * Tensor._wrap(projection)).sum()
        total = term if total is None else total + term
    if total is None or not total.requires_grad:
        return [t.xp.zeros_like(t.data) for _, t in checked]
    found = autograd.grad(total, [t for _, t in checked], allow_unused=True)
    return [g.data if g is not None else t.xp.zeros_like(t.data) for g, (_, t) in zip(found, checked)]


def _central_difference(t: Tensor, step, objective) -> float:
    original = t.data.copy()
    t.data += step
    plus = objective()
    t.data[...] = original - step
    minus = objective()
    t.data[...] = original
    return plus, minus


def _check_every_element(t, grad, objective, position, eps, atol, rtol) -> None:
    numeric = numpy.zeros(t.shape)
    step = t.xp.zeros_like(t.data)
    for flat_index in range(t.numel()):
        index = numpy.unravel_index(flat_index, t.shape)
        step[index] = eps
        plus, minus = _central_difference(t, step, objective)
        step[index] = 0
        numeric[index] = (plus - minus) / (2 * eps)
    analytic = backend.to_numpy(grad).astype(numpy.float64)
    error = numpy.abs(analytic - numeric) - (atol + rtol * numpy.abs(numeric))
    error = numpy.where(numpy.isnan(error), numpy.inf, error)  # a NaN on either side fails, never passes silently
    if error.size and error.max() > 0:
        worst = numpy.unravel_index(int(error.argmax()), t.shape)
        raise GradcheckError(
            f"gradient of input {position} (shape {t.shape}) is wrong at index {tuple(int(i) for i in worst)}: "
            f"analytic {analytic[worst]:.10g}, finite differences {numeric[worst]:.10g} "
            f"(atol {atol}, rtol {rtol}); {int((error > 0).sum())} of {error.size} elements fail"
        )


def _check_direction(t, grad, objective, position, eps, atol, rtol, rng) -> None:
    direction = backend.to_device(rng.standard_normal(t.shape), t.device)
    direction /= max(float((direction * direction).sum()) ** 0.5, 1e-12)
    plus, minus = _central_difference(t, eps * direction, objective)
    numeric = (plus - minus) / (2 * eps)
    analytic = float((grad * direction).sum())
    if not abs(analytic - numeric) <= atol + rtol * abs(numeric):  # NaN on either side fails too
        raise GradcheckError(
            f"directional derivative of input {position} (shape {t.shape}) is wrong: analytic {analytic:.10g}, "
            f"finite differences {numeric:.10g} (atol {atol}, rtol {rtol})"
        )


def gradgradcheck(fn: Callable, inputs: Sequence[Tensor] | Tensor, *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, fast: bool = False, seed: int = 0) -> bool:
    """True when `fn`'s second derivatives match finite differences of its first derivatives; else raises.

    The first derivatives are g(x, v) = ∂⟨fn(x), v⟩/∂x with v random output weights (PyTorch's grad_outputs),
    taken with `create_graph=True`; `gradcheck` then checks g's backward (the double backward of fn) with respect
    to x and v. Same rules as `gradcheck`: deterministic `fn`, float64 leaves.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != backend.float64:
            raise TypeError(f"gradgradcheck: input {i} is {t.dtype}; second derivatives by finite differences need "
                            "float64 inputs")
    if not checked:
        raise ValueError("gradgradcheck: no input requires grad, so there is nothing to check")
    rng = numpy.random.default_rng(seed + 1)
    weights = [Tensor(backend.to_device(rng.standard_normal(o.shape), o.device), requires_grad=True)
               for o in _as_outputs(fn(*inputs))]

    def first_derivatives(*values):
        with enable_grad():
            outputs = [o for o in _as_outputs(fn(*values[:len(inputs)])) if o.requires_grad]
            wanted = [t for t in values[:len(inputs)] if isinstance(t, Tensor) and t.requires_grad]
            found = autograd.grad(outputs, wanted, values[len(inputs):][:len(outputs)], create_graph=True,
                                  allow_unused=True)
        return tuple(g if g is not None else Tensor._wrap(t.xp.zeros_like(t.data)) for g, t in zip(found, wanted))

    return gradcheck(first_derivatives, [*inputs, *weights], eps=eps, atol=atol, rtol=rtol, fast=fast, seed=seed)
