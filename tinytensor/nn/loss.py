"""Loss modules with PyTorch's names and defaults, each a thin Module over its function in `nn.functional`.

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


class MSELoss(Module):
    """Mean squared error between same-shaped tensors (`reduction`: 'mean', 'sum' or 'none')."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
