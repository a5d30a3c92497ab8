"""Losses between an input and a target of the same shape: mean squared error, L1, smooth L1, Huber, binary
cross-entropy (on probabilities and on logits) and KL divergence. The class-id losses, cross_entropy and nll_loss,
are fused in `ops/nn.py`.

Each is a pointwise loss followed by PyTorch's `reduction` ('mean', 'sum' or 'none'). All but one are composed
from differentiable ops, so their gradients (and second derivatives) come from those ops. Binary cross-entropy on
probabilities is one `Function`: composed from `log`, its gradient at an input of exactly 0 or 1 would be NaN,
where PyTorch's is finite.
"""
from __future__ import annotations

from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops._util import operands, require_floating
from tinytensor.ops.activation import logsigmoid
from tinytensor.ops.elementwise import abs, exp, log, where
from tinytensor.tensor import Tensor


def _reduced(op: str, loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_same_shape(op: str, input: Tensor, target: Tensor) -> None:  # noqa: A002 - PyTorch's name
    """PyTorch broadcasts (with a warning) where these differ; a broadcast loss is almost always a bug."""
    if input.shape != target.shape:
        raise ValueError(f"{op}: input shape {input.shape} != target shape {target.shape}")


# ---- regression ---------------------------------------------------------------------------------------------------
def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002 - PyTorch's name
    """(input − target)²."""
    _check_same_shape("mse_loss", input, target)
    return _reduced("mse_loss", (input - target) ** 2, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002 - PyTorch's name
    """|input − target|."""
    _check_same_shape("l1_loss", input, target)
    return _reduced("l1_loss", abs(input - target), reduction)


def _quadratic_then_linear(distance: Tensor, width: float) -> Tensor:
    """½d²/width where d < width, d − width/2 beyond: the two pieces meet with equal value and slope."""
    return where(distance < width, 0.5 * distance * distance / width, distance - 0.5 * width)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean",  # noqa: A002 - PyTorch's name
                   beta: float = 1.0) -> Tensor:
    """½(x − y)²/β where |x − y| < β, else |x − y| − β/2 (Girshick 2015, Fast R-CNN); β = 0 is the L1 loss."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be ≥ 0, got {beta}")
    _check_same_shape("smooth_l1_loss", input, target)
    distance = abs(input - target)
    return _reduced("smooth_l1_loss", _quadratic_then_linear(distance, beta) if beta else distance, reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean",  # noqa: A002 - PyTorch's name
               delta: float = 1.0) -> Tensor:
    """½(x − y)² where |x − y| ≤ δ, else δ(|x − y| − δ/2) (Huber 1964): δ times the smooth L1 loss with β = δ."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    _check_same_shape("huber_loss", input, target)
    return _reduced("huber_loss", delta * _quadratic_then_linear(abs(input - target), delta), reduction)


# ---- binary cross-entropy -----------------------------------------------------------------------------------------
_BCE_EPSILON = 1e-12  # PyTorch's floor under x(1 − x) in the gradient


def _clamped_log(xp, x):
    """log x, clamped below at −100 as PyTorch's binary_cross_entropy does (so log 0 = −100, without NumPy's
    divide-by-zero warning). Written with `where` and operators, so it runs on Tensors under GraphXp too."""
    positive = x > 0
    logs = xp.log(xp.where(positive, x, 1))
    return xp.where(positive & (logs > -100), logs, -100)


class BinaryCrossEntropy(Function):
    """−(t·log x + (1 − t)·log(1 − x)) elementwise, each log clamped at −100, for probabilities x in [0, 1].

    d/dx = (x − t)/max(x(1 − x), 1e-12): PyTorch's formula, finite at x = 0 and 1. d/dt = log(1 − x) − log x, with
    the same clamps. Both lines use only operators, `log` and `where`, so they also run on Tensors (create_graph).
    """

    def forward(self, x, t):
        self.save_for_backward(x, t)
        return -(t * _clamped_log(self.xp, x) + (1 - t) * _clamped_log(self.xp, 1 - x))

    def backward(self, grad):
        xp = self.xp
        x, t = self.saved
        grad_x = grad_t = None
        if self.needs_input_grad[0]:
            spread = x * (1 - x)
            grad_x = grad * (x - t) / xp.where(spread > _BCE_EPSILON, spread, _BCE_EPSILON)
        if self.needs_input_grad[1]:
            grad_t = grad * (_clamped_log(xp, 1 - x) - _clamped_log(xp, x))
        return grad_x, grad_t


def _check_probabilities(input: Tensor) -> None:  # noqa: A002 - PyTorch's name
    """Inputs of binary_cross_entropy must lie in [0, 1]: checked at once on the CPU, with the next transfer to the
    host on a GPU (`backend.check_later`, no synchronisation of its own)."""
    outside = (input.data < 0) | (input.data > 1)
    error = ValueError("binary_cross_entropy: input values must lie in [0, 1] (probabilities); for logits use "
                       "binary_cross_entropy_with_logits")
    if input.device != "cpu":
        backend.check_later(outside.any(), error)
    elif outside.any():
        raise error


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,  # noqa: A002
                         reduction: str = "mean") -> Tensor:
    """−w·(t·log x + (1 − t)·log(1 − x)) for probabilities x (e.g. after a sigmoid), each log clamped at −100 as in
    PyTorch; `weight` rescales each element's loss (it broadcasts against the input)."""
    require_floating("binary_cross_entropy", input)
    _check_same_shape("binary_cross_entropy", input, target)
    _check_probabilities(input)
    loss = BinaryCrossEntropy.apply(*operands(input, target))
    return _reduced("binary_cross_entropy", loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,  # noqa: A002
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """−w·(p·t·log σ(x) + (1 − t)·log(1 − σ(x))) for logits x, as PyTorch computes it:
    (1 − t)·x + (1 + (p − 1)·t)·softplus(−x), finite for logits of ±1e4 (softplus(−x) = −log σ(x) is evaluated
    without overflow). `pos_weight` p weighs the positive term (one per class, broadcast along the last axis)."""
    require_floating("binary_cross_entropy_with_logits", input)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    minus_log_sigmoid = -logsigmoid(input)
    positive_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * target
    loss = (1 - target) * input + positive_weight * minus_log_sigmoid
    return _reduced("binary_cross_entropy_with_logits", loss if weight is None else loss * weight, reduction)


# ---- distributions ------------------------------------------------------------------------------------------------
def kl_div(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:  # noqa: A002
    """KL(target ‖ q) summed pointwise as t·(log t − input), with `input` = log q (log-probabilities, as PyTorch
    expects) and 0·log 0 = 0; with log_target=True the target is given as log t: eᵗ·(t − input).

    reduction='batchmean' divides the sum by the batch size input.shape[0]: the true KL divergence per example.
    PyTorch's default 'mean' divides by the number of elements instead, as here."""
    if reduction not in ("none", "batchmean", "sum", "mean"):
        raise ValueError(f"kl_div: reduction must be 'mean', 'batchmean', 'sum' or 'none', got {reduction!r}")
    if log_target:
        pointwise = exp(target) * (target - input)
    else:
        pointwise = target * log(where(target > 0, target, 1)) - target * input  # log 1 = 0 makes 0·log 0 = 0
    if reduction == "batchmean":
        return pointwise.sum() / (input.shape[0] if input.ndim else 1)
    return _reduced("kl_div", pointwise, reduction)
