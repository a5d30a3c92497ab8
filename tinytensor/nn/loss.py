"""Loss modules with PyTorch's names and defaults, each a thin Module over its function in `nn.functional`
(PyTorch's deprecated `size_average` and `reduce` arguments are left out: pass `reduction`).

    criterion = nn.CrossEntropyLoss(ignore_index=-1); loss = criterion(logits.view(-1, V), targets.view(-1))
"""
from __future__ import annotations

from tinytensor.nn import functional as F
from tinytensor.nn.module import Module
from tinytensor.tensor import Tensor


class CrossEntropyLoss(Module):
    """F.cross_entropy as a module: logits [N, C] (or [N, C, d1, …]) against class ids [N] ([N, d1, …]).

    Class `weight`s are not supported (F.cross_entropy has none); passing one raises rather than being ignored.
    """

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__()
        if weight is not None:
            raise NotImplementedError("CrossEntropyLoss: class weights are not supported")
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input: Tensor, target) -> Tensor:
        return F.cross_entropy(input, target, ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, label_smoothing={self.label_smoothing}"


class NLLLoss(Module):
    """F.nll_loss as a module: log-probabilities [N, C] (or [N, C, d1, …]) against class ids [N] ([N, d1, …]).
    Class `weight`s are not supported, as for CrossEntropyLoss."""

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        if weight is not None:
            raise NotImplementedError("NLLLoss: class weights are not supported")
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, input: Tensor, target) -> Tensor:
        return F.nll_loss(input, target, ignore_index=self.ignore_index, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"


class _Loss(Module):
    """A loss between same-shaped tensors with PyTorch's `reduction` ('mean', 'sum' or 'none'), shown in its repr."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error between same-shaped tensors."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error between same-shaped tensors."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """½(x − y)²/β where |x − y| < β, else |x − y| − β/2."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}"


class HuberLoss(_Loss):
    """½(x − y)² where |x − y| ≤ δ, else δ(|x − y| − δ/2)."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, delta={self.delta}"


class KLDivLoss(_Loss):
    """KL divergence of `target` from the log-probabilities `input`; reduction='batchmean' gives the per-example
    divergence (PyTorch's default 'mean' averages over every element)."""

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, log_target={self.log_target}"


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities; `weight` (a buffer: it moves with the module) rescales each element."""

    def __init__(self, weight: Tensor | None = None, reduction: str = "mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits (sigmoid and loss in one stable formula); `weight` rescales each element and
    `pos_weight` the positive term of each class (both buffers, as in PyTorch)."""

    def __init__(self, weight: Tensor | None = None, reduction: str = "mean", pos_weight: Tensor | None = None):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)
