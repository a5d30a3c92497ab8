"""Convolution, pooling and batch normalisation: the ops of a classic CNN, each forward beside its analytic backward.

Every 2-D op here slides a kH×kW window over a padded input [N, C, Hp, Wp]. For one kernel position (i, j) the
elements the windows meet form one strided slice of the input (rows i·d, i·d + s, …), so a loop over the kH·kW
kernel positions gathers every window without stride tricks, on NumPy and CuPy alike (Chainer's im2col):

    im2col: cols[c, i, j, n, y, x] = xpad[n, c, y·s + i·d, x·s + j·d]         ([C·kH·kW, N·OH·OW] as a matrix)
    col2im: its adjoint, adding each position's slice back into place (overlapping windows add up)

Convolution is then one GEMM W[O, C·kH·kW]·cols (per group), and its backward is two GEMMs and a col2im. Max and
average pooling reduce the same slices directly. 1-D ops are the 2-D ops on [N, C, 1, L]. Batch norm normalises
per channel over every other axis. Each fused op has a plain twin in `ops/composed.py` for second derivatives.
Adaptive average pooling is two matrix products with averaging matrices, so it needs no op of its own.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from tinytensor.autograd import Function
from tinytensor.ops import composed
from tinytensor.ops._util import require_floating
from tinytensor.ops.elementwise import rsqrt
from tinytensor.ops.linalg import matmul
from tinytensor.tensor import Tensor


# ---- where the windows sit -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Windows:
    """The kH×kW windows of a 2-D op: kernel, stride and dilation per axis, padding (before, after) per axis."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """⌊(size + pads − d·(k − 1) − 1)/s⌋ + 1 per axis, PyTorch's formula."""
        return tuple((size + before + after - d * (k - 1) - 1) // s + 1 for size, (before, after), k, s, d
                     in zip((height, width), self.padding, self.kernel, self.stride, self.dilation))

    def positions(self):
        """Kernel positions (i, j), row by row: the order in which max pooling breaks ties (first wins)."""
        return itertools.product(range(self.kernel[0]), range(self.kernel[1]))

    def at(self, i: int, j: int, out_size: tuple[int, int]) -> tuple:
        """The index of the padded input [N, C, Hp, Wp] that kernel position (i, j) meets, one element per output."""
        return (slice(None), slice(None), *(slice(k * d, k * d + s * (n - 1) + 1, s) for k, d, s, n
                                            in zip((i, j), self.dilation, self.stride, out_size)))

    def pad(self, xp, x, value: float = 0.0):
        if not any(before or after for before, after in self.padding):
            return x
        return xp.pad(x, ((0, 0), (0, 0), *self.padding), constant_values=value)

    def unpad(self, padded):
        (top, bottom), (left, right) = self.padding
        return padded[:, :, top:padded.shape[2] - bottom, left:padded.shape[3] - right]

    def padded_shape(self, shape: tuple) -> tuple:
        return (*shape[:2], *(size + before + after for size, (before, after) in zip(shape[2:], self.padding)))


def im2col(xp, padded, windows: Windows, out_size: tuple[int, int]):
    """[N, C, Hp, Wp] → cols [C, kH, kW, N, OH, OW]: for each kernel position, the strided slice it meets."""
    batch, channels = padded.shape[:2]
    cols = xp.empty((channels, *windows.kernel, batch, *out_size), dtype=padded.dtype)
    for i, j in windows.positions():
        cols[:, i, j] = padded[windows.at(i, j, out_size)].transpose(1, 0, 2, 3)
    return cols


def col2im(xp, cols, windows: Windows, padded_shape: tuple):
    """The adjoint of im2col: cols [C, kH, kW, N, OH, OW] → [N, C, Hp, Wp], each slice added back into place."""
    padded = xp.zeros(padded_shape, dtype=cols.dtype)
    for i, j in windows.positions():
        padded[windows.at(i, j, cols.shape[-2:])] += cols[:, i, j].transpose(1, 0, 2, 3)
    return padded


# ---- argument handling ---------------------------------------------------------------------------------------------
def _pair(op: str, name: str, value, spatial: int, fill: int) -> tuple[int, int]:
    """An int or a tuple of `spatial` ints as (H, W); a 1-D op's value goes on W and H gets `fill`."""
    values = (value,) * spatial if isinstance(value, int) else tuple(value)
    if len(values) != spatial or not all(isinstance(v, int) for v in values):
        raise ValueError(f"{op}: {name} must be an int or a tuple of {spatial} ints, got {value!r}")
    return values if spatial == 2 else (fill, *values)


def _as_4d(op: str, x: Tensor, spatial: int):
    """x [N, C, *S] or unbatched [C, *S] (len(S) = spatial) as [N, C, H, W] (a 1-D op's input gets H = 1), and the
    function that gives a result back the caller's layout."""
    layout = "[N, C, L]" if spatial == 1 else "[N, C, H, W]"
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(f"{op}: input {x.shape} must be {layout} or unbatched {layout.replace('N, ', '')}")
    require_floating(op, x)
    batched = x.ndim == spatial + 2
    lifted = x if batched else x.unsqueeze(0)
    lifted = lifted.unsqueeze(2) if spatial == 1 else lifted

    def restore(out: Tensor) -> Tensor:
        out = out.squeeze(2) if spatial == 1 else out
        return out if batched else out.squeeze(0)

    return lifted, restore


def _windows(op: str, x: Tensor, shown_shape: tuple, kernel, stride, dilation, padding) -> Windows:
    """Windows with positive kernel, stride and dilation and non-negative padding that fit the padded input."""
    if min(*kernel, *stride, *dilation) < 1 or min(min(p) for p in padding) < 0:
        raise ValueError(f"{op}: kernel {kernel}, stride {stride} and dilation {dilation} must be ≥ 1 and padding "
                         f"{padding} ≥ 0")
    windows = Windows(kernel, stride, dilation, padding)
    if min(windows.output_size(*x.shape[2:])) < 1:
        raise ValueError(f"{op}: input {shown_shape} is smaller than the kernel {kernel} (dilation {dilation}, "
                         f"padding {padding})")
    return windows


# ---- convolution -----------------------------------------------------------------------------------------------------
class Conv2d(Function):
    """out[n, o] = b[o] + Σ_{c, i, j} w[o, c, i, j]·xpad[n, g·C/G + c, y·s + i·d, x·s + j·d], c within o's group g.

    Forward: cols = im2col(xpad), then per group one GEMM W[O/G, C/G·kH·kW]·cols[C/G·kH·kW, N·OH·OW].
    Backward: dW = dY·colsᵀ, dcols = Wᵀ·dY, dx = col2im(dcols) without the padding, db = Σ dY over N, OH, OW.
    Saves the input and weight only (as PyTorch does); the cols are rebuilt when dW is needed.
    """

    def forward(self, x, weight, *bias, windows=None, groups=1):
        self.windows, self.groups = windows, groups
        self.save_for_backward(x, weight, *bias)
        out_size = windows.output_size(*x.shape[2:])
        cols = im2col(self.xp, windows.pad(self.xp, x), windows, out_size)
        out = self.xp.matmul(self._grouped(weight), cols.reshape(groups, -1, x.shape[0] * out_size[0] * out_size[1]))
        out = out.reshape(weight.shape[0], -1)
        if bias:
            out += bias[0][:, None]
        return self.xp.ascontiguousarray(out.reshape(weight.shape[0], x.shape[0], *out_size).transpose(1, 0, 2, 3))

    def _grouped(self, weight):
        """[O, C/G, kH, kW] as G matrices [O/G, C/G·kH·kW]."""
        return weight.reshape(self.groups, weight.shape[0] // self.groups, -1)

    def backward(self, grad):
        xp, windows, groups = self.xp, self.windows, self.groups
        x, weight = self.saved[:2]
        out_size = grad.shape[2:]
        grad_rows = xp.ascontiguousarray(grad.transpose(1, 0, 2, 3)).reshape(groups, grad.shape[1] // groups, -1)
        grad_x = grad_weight = grad_bias = None
        if self.needs_input_grad[0]:
            grad_cols = xp.matmul(self._grouped(weight).swapaxes(-1, -2), grad_rows)
            grad_cols = grad_cols.reshape(x.shape[1], *windows.kernel, x.shape[0], *out_size)
            grad_x = windows.unpad(col2im(xp, grad_cols, windows, windows.padded_shape(x.shape)))
        if self.needs_input_grad[1]:
            cols = im2col(xp, windows.pad(xp, x), windows, out_size)
            grad_weight = xp.matmul(grad_rows, cols.reshape(groups, -1, grad_rows.shape[-1]).swapaxes(-1, -2))
            grad_weight = grad_weight.reshape(weight.shape)
        if len(self.saved) == 3 and self.needs_input_grad[2]:
            grad_bias = grad.sum(axis=(0, 2, 3))
        return grad_x, grad_weight, grad_bias

    def composed(self, x, weight, *bias):
        return composed.conv2d(x, weight, bias[0] if bias else None, self.windows, self.groups)


def _conv_padding(op: str, padding, kernel, stride, dilation, spatial: int) -> tuple:
    """PyTorch's padding argument as (before, after) per axis: an int or tuple (both sides), "valid" (none) or
    "same" (output size = input size; when d·(k − 1) is odd the extra element goes after, as in PyTorch)."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride[2 - spatial:]}")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((total // 2, total - total // 2) for total in totals)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    return tuple((p, p) for p in _pair(op, "padding", padding, spatial, 0))


def _check_conv(op: str, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int, spatial: int) -> None:
    if weight.ndim != spatial + 2:
        raise ValueError(f"{op}: weight {weight.shape} must be [out_channels, in_channels/groups, "
                         f"{'kL' if spatial == 1 else 'kH, kW'}]")
    channels = x.shape[1] if x.ndim == spatial + 2 else x.shape[0]
    if groups < 1 or channels != weight.shape[1] * groups or weight.shape[0] % groups:
        raise ValueError(f"{op}: input {x.shape} and weight {weight.shape} do not fit groups={groups} (input "
                         "channels must be weight.shape[1]·groups, and out_channels divisible by groups)")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: bias {bias.shape} does not fit weight {weight.shape}")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != weight.dtype):
        raise TypeError(f"{op}: input dtype {x.dtype} differs from weight dtype {weight.dtype} (or bias)")


def _convolution(op: str, x: Tensor, weight: Tensor, bias, stride, padding, dilation, groups: int,
                 spatial: int) -> Tensor:
    lifted, restore = _as_4d(op, x, spatial)
    _check_conv(op, x, weight, bias, groups, spatial)
    kernel = tuple(weight.shape[2:]) if spatial == 2 else (1, weight.shape[2])
    stride = _pair(op, "stride", stride, spatial, 1)
    dilation = _pair(op, "dilation", dilation, spatial, 1)
    padding = _conv_padding(op, padding, kernel, stride, dilation, spatial)
    windows = _windows(op, lifted, x.shape, kernel, stride, dilation, padding)
    weight = weight.unsqueeze(2) if spatial == 1 else weight
    return restore(Conv2d.apply(lifted, weight, *([bias] if bias is not None else []), windows=windows,
                                groups=groups))


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """torch.nn.functional.conv2d: input [N, C, H, W] (or [C, H, W]) with weight [O, C/groups, kH, kW] and bias
    [O] → [N, O, OH, OW], OH = ⌊(H + 2·pH − dH·(kH − 1) − 1)/sH⌋ + 1. `padding` is an int, a pair, 'same' or
    'valid'; stride and dilation are ints or pairs."""
    return _convolution("conv2d", input, weight, bias, stride, padding, dilation, groups, spatial=2)


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """torch.nn.functional.conv1d: input [N, C, L] (or [C, L]) with weight [O, C/groups, kL] → [N, O, OL]."""
    return _convolution("conv1d", input, weight, bias, stride, padding, dilation, groups, spatial=1)


# ---- pooling -------------------------------------------------------------------------------------------------------
class MaxPool2d(Function):
    """out[n, c, y, x] = max over the window at (y, x) of the input padded with −inf.

    Forward keeps, per output, which kernel position won (the first on ties, a NaN wins as in PyTorch); backward
    sends each output gradient to that element, adding where windows overlap.
    """

    def forward(self, x, windows=None):
        xp = self.xp
        padded = windows.pad(xp, x, -xp.inf)
        out_size = windows.output_size(*x.shape[2:])
        out, winner = None, None
        for position, (i, j) in enumerate(windows.positions()):
            candidate = padded[windows.at(i, j, out_size)]
            if out is None:
                out, winner = candidate.copy(), xp.zeros(candidate.shape, dtype=xp.int64)
                continue
            larger = (candidate > out) | xp.isnan(candidate)
            out = xp.where(larger, candidate, out)
            winner = xp.where(larger, position, winner)
        self.windows, self.winner, self.input_shape = windows, winner, x.shape
        self.save_for_backward(x)  # for `composed`
        return out

    def backward(self, grad):
        windows = self.windows
        grad_padded = self.xp.zeros(windows.padded_shape(self.input_shape), dtype=grad.dtype)
        for position, (i, j) in enumerate(windows.positions()):
            grad_padded[windows.at(i, j, grad.shape[2:])] += grad * (self.winner == position)
        return windows.unpad(grad_padded)

    def composed(self, x):
        return composed.max_pool2d(x, self.windows, self.winner)


class AvgPool2d(Function):
    """out[n, c, y, x] = Σ over the window at (y, x) of the zero-padded input / divisor; backward spreads each
    output gradient / divisor over its window. The divisor is kH·kW (count_include_pad, PyTorch's default), the
    number of real input elements in the window, or divisor_override."""

    def forward(self, x, windows=None, divisor=None):
        xp = self.xp
        padded = windows.pad(xp, x)
        out_size = windows.output_size(*x.shape[2:])
        out = xp.zeros((*x.shape[:2], *out_size), dtype=x.dtype)
        for i, j in windows.positions():
            out += padded[windows.at(i, j, out_size)]
        self.windows, self.input_shape = windows, x.shape
        self.divisor = divisor if divisor is not None else _real_elements(xp, windows, x.shape, x.dtype)
        self.save_for_backward(x)  # for `composed`
        return out / self.divisor

    def backward(self, grad):
        windows = self.windows
        share = grad / self.divisor
        grad_padded = self.xp.zeros(windows.padded_shape(self.input_shape), dtype=grad.dtype)
        for i, j in windows.positions():
            grad_padded[windows.at(i, j, grad.shape[2:])] += share
        return windows.unpad(grad_padded)

    def composed(self, x):
        return composed.avg_pool2d(x, self.windows, self.divisor)


def _real_elements(xp, windows: Windows, shape: tuple, dtype):
    """How many elements of the unpadded input each window covers, [OH, OW] (count_include_pad=False)."""
    ones = windows.pad(xp, xp.ones((1, 1, *shape[2:]), dtype=dtype))
    out_size = windows.output_size(*shape[2:])
    counts = xp.zeros((1, 1, *out_size), dtype=dtype)
    for i, j in windows.positions():
        counts += ones[windows.at(i, j, out_size)]
    return counts[0, 0]


def _pool_windows(op: str, x: Tensor, shown_shape: tuple, kernel_size, stride, padding, dilation,
                  spatial: int) -> Windows:
    """PyTorch's pooling arguments as Windows: stride defaults to the kernel, padding at most half the (dilated)
    kernel so that every window holds an input element."""
    kernel = _pair(op, "kernel_size", kernel_size, spatial, 1)
    stride = kernel if stride is None or stride == () or stride == [] else _pair(op, "stride", stride, spatial, 1)
    dilation = _pair(op, "dilation", dilation, spatial, 1)
    pads = _pair(op, "padding", padding, spatial, 0)
    if any(2 * p > d * (k - 1) + 1 for p, k, d in zip(pads, kernel, dilation)):
        raise ValueError(f"{op}: padding {pads[2 - spatial:]} must be at most half the kernel {kernel[2 - spatial:]}")
    return _windows(op, x, shown_shape, kernel, stride, dilation, tuple((p, p) for p in pads))


def _refuse(op: str, **options) -> None:
    for name, value in options.items():
        if value:
            raise NotImplementedError(f"{op}: {name}={value!r} is not supported")


def _max_pool(op: str, input: Tensor, kernel_size, stride, padding, dilation, spatial: int) -> Tensor:
    x, restore = _as_4d(op, input, spatial)
    windows = _pool_windows(op, x, input.shape, kernel_size, stride, padding, dilation, spatial)
    return restore(MaxPool2d.apply(x, windows=windows))


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """torch.nn.functional.max_pool2d: the max of each kH×kW window of [N, C, H, W] (or [C, H, W]); stride
    defaults to the kernel size. The gradient goes to the window's first maximal element."""
    _refuse("max_pool2d", ceil_mode=ceil_mode, return_indices=return_indices)
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, spatial=2)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """torch.nn.functional.max_pool1d over the last axis of [N, C, L] (or [C, L])."""
    _refuse("max_pool1d", ceil_mode=ceil_mode, return_indices=return_indices)
    return _max_pool("max_pool1d", input, kernel_size, stride, padding, dilation, spatial=1)


def _avg_pool(op: str, input: Tensor, kernel_size, stride, padding, count_include_pad: bool, divisor_override,
              spatial: int) -> Tensor:
    x, restore = _as_4d(op, input, spatial)
    windows = _pool_windows(op, x, input.shape, kernel_size, stride, padding, 1, spatial)
    divisor = divisor_override or (windows.kernel[0] * windows.kernel[1] if count_include_pad else None)
    return restore(AvgPool2d.apply(x, windows=windows, divisor=divisor))


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """torch.nn.functional.avg_pool2d: the mean of each kH×kW window; padded zeros count towards the mean unless
    count_include_pad=False; divisor_override replaces the divisor."""
    _refuse("avg_pool2d", ceil_mode=ceil_mode)
    return _avg_pool("avg_pool2d", input, kernel_size, stride, padding, count_include_pad, divisor_override, 2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """torch.nn.functional.avg_pool1d over the last axis of [N, C, L] (or [C, L])."""
    _refuse("avg_pool1d", ceil_mode=ceil_mode)
    return _avg_pool("avg_pool1d", input, kernel_size, stride, padding, count_include_pad, None, 1)


def _averaging_matrix(x: Tensor, in_size: int, out_size: int) -> Tensor:
    """[out, in]: row i averages PyTorch's adaptive window [⌊i·in/out⌋, ⌈(i + 1)·in/out⌉) of an axis."""
    xp = x.xp
    rows, cols = xp.arange(out_size)[:, None], xp.arange(in_size)[None, :]
    start, end = rows * in_size // out_size, -(-(rows + 1) * in_size // out_size)
    return Tensor._wrap(((cols >= start) & (cols < end)).astype(x.dtype) / (end - start).astype(x.dtype))


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """torch.nn.functional.adaptive_avg_pool2d: [N, C, H, W] (or [C, H, W]) → [N, C, OH, OW], each output the
    mean of PyTorch's window [⌊i·H/OH⌋, ⌈(i + 1)·H/OH⌉) × (the same along W), for any output size (None keeps
    that axis). Averaging is linear and separable: out = A_H·x·A_Wᵀ, two matrix products."""
    x, restore = _as_4d("adaptive_avg_pool2d", input, 2)
    sizes = (output_size, output_size) if isinstance(output_size, int) or output_size is None else output_size
    out_h, out_w = (size if size is not None else full for size, full in zip(sizes, x.shape[2:]))
    return restore(_adaptive(x, out_h, out_w))


def adaptive_avg_pool1d(input: Tensor, output_size: int) -> Tensor:
    """torch.nn.functional.adaptive_avg_pool1d over the last axis of [N, C, L] (or [C, L])."""
    x, restore = _as_4d("adaptive_avg_pool1d", input, 1)
    return restore(_adaptive(x, 1, output_size))


def _adaptive(x: Tensor, out_h: int, out_w: int) -> Tensor:
    if min(out_h, out_w) < 1:
        raise ValueError(f"adaptive_avg_pool: output size ({out_h}, {out_w}) must be positive")
    rows, cols = _averaging_matrix(x, x.shape[2], out_h), _averaging_matrix(x, x.shape[3], out_w)
    return matmul(matmul(rows, x), cols.T)


# ---- batch normalisation ---------------------------------------------------------------------------------------------
class BatchNorm(Function):
    """Training-mode batch norm (Ioffe & Szegedy 2015): y = x̂·w + b with x̂ = (x − μ_c)/√(σ²_c + eps), μ and σ²
    (biased) per channel c = axis 1, over the batch and every spatial axis. When given running statistics it also
    updates them in place: r ← (1 − momentum)·r + momentum·batch value, the variance unbiased (·m/(m − 1)).

    Backward, means per channel: dx = (1/σ)·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·w; dw = Σ dy·x̂, db = Σ dy.
    """

    def forward(self, x, *params, eps=1e-5, running=None):
        xp = self.xp
        self.axes, self.eps = (0, *range(2, x.ndim)), eps
        mean = x.mean(axis=self.axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=self.axes, keepdims=True)
        rstd = 1 / xp.sqrt(var + eps)
        normalized = centered
        normalized *= rstd
        if running is not None:
            _update_running_stats(*running, mean, var, count=x.size // x.shape[1])
        weight = _per_channel(params[0], x.ndim) if params else None
        self.save_for_backward(normalized, rstd, weight, x, *params)  # x and params for `composed`
        out = normalized * weight if weight is not None else normalized.copy()
        if len(params) == 2:
            out += _per_channel(params[1], x.ndim)
        return out

    def backward(self, grad):
        normalized, rstd, weight = self.saved[:3]
        d_normalized = grad * weight if weight is not None else grad
        grad_x = None
        if self.needs_input_grad[0]:
            grad_x = d_normalized - d_normalized.mean(axis=self.axes, keepdims=True)
            grad_x -= normalized * (d_normalized * normalized).mean(axis=self.axes, keepdims=True)
            grad_x *= rstd
        needs = self.needs_input_grad[1:]
        grad_weight = (grad * normalized).sum(axis=self.axes) if needs and needs[0] else None
        grad_bias = grad.sum(axis=self.axes) if len(needs) == 2 and needs[1] else None
        return grad_x, grad_weight, grad_bias

    def composed(self, x, *params):
        return composed.batch_norm(x, *params, eps=self.eps)


def _per_channel(vector, ndim: int):
    """A [C] vector shaped [1, C, 1, …] to broadcast against an ndim-input (arrays and Tensors alike)."""
    return vector.reshape(1, -1, *(1,) * (ndim - 2))


def _update_running_stats(running_mean, running_var, momentum: float, mean, var, count: int) -> None:
    """r ← (1 − momentum)·r + momentum·batch value, in place; the variance made unbiased as PyTorch does."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean.reshape(-1).astype(running_mean.dtype, copy=False)
    running_var *= 1 - momentum
    running_var += (momentum * count / (count - 1)) * var.reshape(-1).astype(running_var.dtype, copy=False)


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.batch_norm over axis 1 of [N, C], [N, C, L] or [N, C, H, W]. Training normalises with
    the batch's statistics and updates the running ones (when given); otherwise it uses the running statistics:
    y = (x − running_mean)/√(running_var + eps)·w + b."""
    require_floating("batch_norm", input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input {input.shape} must be [N, C, *] with channels on axis 1")
    channels = input.shape[1]
    given = {"running_mean": running_mean, "running_var": running_var, "weight": weight, "bias": bias}
    for name, vector in given.items():
        if vector is not None and vector.shape != (channels,):
            raise ValueError(f"batch_norm: {name} {vector.shape} does not fit input {input.shape} ({channels} "
                             "channels)")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: training=False needs running_mean and running_var")
        scale = rsqrt(running_var.detach() + eps)
        scale = scale * weight if weight is not None else scale
        out = (input - _per_channel(running_mean.detach(), input.ndim)) * _per_channel(scale, input.ndim)
        return out + _per_channel(bias, input.ndim) if bias is not None else out
    if input.numel() // channels < 2:
        raise ValueError(f"batch_norm: input {input.shape} has one value per channel; training needs more")
    if bias is not None and weight is None:
        weight = Tensor._wrap(input.xp.ones(channels, dtype=input.dtype))
    running = None
    if running_mean is not None and running_var is not None:
        running = (running_mean.data, running_var.data, momentum)
    return BatchNorm.apply(input, *[p for p in (weight, bias) if p is not None], eps=eps, running=running)
