"""The layers of a classic CNN: Conv1d, Conv2d, max/average/adaptive pooling, BatchNorm1d and BatchNorm2d.

Each is a `Module` calling one function of `tinytensor.nn.functional` (the ops and their backward live in
`tinytensor.ops.conv`), with PyTorch's arguments, defaults, initialisation and state-dict names: `weight`
[out, in/groups, *kernel] and `bias` for convolutions; `weight`, `bias`, `running_mean`, `running_var` and
`num_batches_tracked` for batch norm, so PyTorch checkpoints map by name.
"""
from __future__ import annotations

import math

from tinytensor import backend
from tinytensor.nn import functional as F
from tinytensor.nn import init
from tinytensor.nn.layers import _new_parameter
from tinytensor.nn.module import Module
from tinytensor.tensor import Tensor


def _tuple(value, spatial: int) -> tuple:
    return (value,) * spatial if isinstance(value, int) else tuple(value)


# ---- convolution ---------------------------------------------------------------------------------------------------
class _ConvNd(Module):
    """What Conv1d and Conv2d share: the arguments, the parameters and PyTorch's initialisation,
    W ~ kaiming_uniform_(a=√5) = U(±1/√fan_in) and b ~ U(±1/√fan_in), fan_in = in_channels/groups·kH·kW."""

    spatial = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=None,
                 device: str | None = None):
        super().__init__()
        name = type(self).__name__
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels {in_channels} and out_channels {out_channels} must be divisible "
                             f"by groups {groups}")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{name}: padding_mode={padding_mode!r} is not supported (only 'zeros')")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, self.spatial)
        self.stride, self.dilation = _tuple(stride, self.spatial), _tuple(dilation, self.spatial)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, self.spatial)
        self.padding_mode = padding_mode
        self.weight = _new_parameter((out_channels, in_channels // groups, *self.kernel_size), dtype, device)
        self.register_parameter("bias", _new_parameter((out_channels,), dtype, device) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = init.fan_in_and_fan_out(self.weight)[0]
            bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"]
        if self.padding not in ((0,) * self.spatial, "valid"):
            parts.append(f"padding={self.padding!r}")
        if self.dilation != (1,) * self.spatial:
            parts.append(f"dilation={self.dilation}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        return ", ".join(parts)


class Conv2d(_ConvNd):
    """2-D convolution: [N, in_channels, H, W] → [N, out_channels, OH, OW] (see F.conv2d)."""

    spatial = 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-D convolution: [N, in_channels, L] → [N, out_channels, OL] (see F.conv1d)."""

    spatial = 1

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


# ---- pooling -------------------------------------------------------------------------------------------------------
class MaxPool2d(Module):
    """The max of each window (see F.max_pool2d); stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.dilation = dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return self._pool(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)

    _pool = staticmethod(F.max_pool2d)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(MaxPool2d):
    """The max of each window along the last axis (see F.max_pool1d)."""

    _pool = staticmethod(F.max_pool1d)


class AvgPool2d(Module):
    """The mean of each window (see F.avg_pool2d); stride defaults to kernel_size, padded zeros count."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(Module):
    """The mean of each window along the last axis (see F.avg_pool1d)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average to a fixed output size whatever the input size (see F.adaptive_avg_pool2d); (1, 1) is global
    average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(x, self.output_size)


# ---- batch normalisation ---------------------------------------------------------------------------------------------
class _BatchNorm(Module):
    """Batch norm over channel axis 1 (Ioffe & Szegedy 2015), PyTorch's module: in training it normalises with the
    batch's statistics and updates the running ones, r ← (1 − momentum)·r + momentum·batch (variance unbiased;
    momentum=None: the cumulative average over num_batches_tracked); in eval it uses the running statistics.
    With track_running_stats=False there are none, and batch statistics are used in both modes.
    weight starts at ones, bias at zeros (affine=False drops both)."""

    expected_dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None, device: str | None = None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", _new_parameter((num_features,), dtype, device) if affine else None)
        self.register_parameter("bias", _new_parameter((num_features,), dtype, device) if affine else None)
        float_dtype = backend.DEFAULT_FLOAT if dtype is None else backend.as_dtype(dtype)
        for name, buffer_dtype, shape in (("running_mean", float_dtype, (num_features,)),
                                          ("running_var", float_dtype, (num_features,)),
                                          ("num_batches_tracked", backend.int64, ())):
            buffer = Tensor._wrap(backend.module_for(device or "cpu").zeros(shape, dtype=buffer_dtype))
            self.register_buffer(name, buffer if track_running_stats else None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self.expected_dims:
            dims = " or ".join(f"{d}D" for d in self.expected_dims)
            raise ValueError(f"{type(self).__name__}: expected {dims} input, got input {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                factor = 1.0 / int(self.num_batches_tracked.data)
        use_batch_stats = self.training or self.running_mean is None
        keep_stats = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if keep_stats else None, self.running_var if keep_stats else None,
                            self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of [N, C] or [N, C, L] (makemore's MLP, 1-D CNNs)."""

    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of images [N, C, H, W], statistics over N, H and W per channel."""

    expected_dims = (4,)
