"""Fused neural-network ops, each one `Function` with an analytic backward (their plain versions: `ops/composed.py`).

Composing softmax or layer norm from small ops would save every intermediate and walk memory many times; a
fused op saves only what its backward formula needs and does a few passes. These are the hot spots of every
transformer: softmax, log-softmax, cross-entropy, layer norm, RMS norm, dropout and embedding lookup (attention
has its own file, `ops/attention.py`; the losses between same-shaped tensors, `ops/losses.py`). normalize and
cosine_similarity are composed. `tinytensor.nn.functional` exposes them with PyTorch's signatures.
"""
from __future__ import annotations

import math

from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops import composed
from tinytensor.ops._util import check_broadcastable, operands, require_floating
from tinytensor.ops.elementwise import clamp
from tinytensor.ops.reduce import norm
from tinytensor.ops.shape import expand, scatter_add
from tinytensor.tensor import Tensor


# ---- softmax family ----------------------------------------------------------------------------------------------
def stable_softmax(xp, x, axis, in_place: bool = False):
    """exp(x − max) / Σ exp(x − max): finite for logits of ±1e4, in three passes over memory (overwriting x
    when `in_place`)."""
    out = xp.subtract(x, x.max(axis=axis, keepdims=True), out=x if in_place else None)
    xp.exp(out, out=out)
    out /= sum_keepdims(xp, out, axis)
    return out


_ONES_PRODUCT_MAX_SIZE = 1 << 22  # past this, BLAS's matrix-vector products ran slower than NumPy's sum


def sum_keepdims(xp, x, axis: int):
    """x.sum(axis, keepdims=True); along either of the last two axes of an array of up to 4M elements as a product
    with a vector of ones, which BLAS runs three to four times faster than NumPy reduces short rows."""
    axis = axis % x.ndim
    if x.ndim < 2 or axis < x.ndim - 2 or x.size > _ONES_PRODUCT_MAX_SIZE:
        return x.sum(axis=axis, keepdims=True)
    ones = xp.ones(x.shape[axis], dtype=x.dtype)
    return (x @ ones)[..., None] if axis == x.ndim - 1 else (ones @ x)[..., None, :]


class Softmax(Function):
    def forward(self, x, axis=-1):
        self.axis = axis
        out = stable_softmax(self.xp, x, axis)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        probs = self.saved[0]
        weighted = grad * probs
        weighted -= probs * weighted.sum(axis=self.axis, keepdims=True)
        return weighted


class LogSoftmax(Function):
    def forward(self, x, axis=-1):
        self.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        out = shifted - self.xp.log(self.xp.exp(shifted).sum(axis=axis, keepdims=True))
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        return grad - self.xp.exp(self.saved[0]) * grad.sum(axis=self.axis, keepdims=True)


def softmax(x: Tensor, dim: int = -1, *, axis: int | None = None) -> Tensor:
    require_floating("softmax", x)
    return Softmax.apply(x, axis=dim if axis is None else axis)


def log_softmax(x: Tensor, dim: int = -1, *, axis: int | None = None) -> Tensor:
    require_floating("log_softmax", x)
    return LogSoftmax.apply(x, axis=dim if axis is None else axis)


# ---- losses -------------------------------------------------------------------------------------------------------
def _check_targets(xp, targets, n_classes: int, ignore_index: int) -> None:
    """Class ids must lie in [0, n_classes) unless ignored. On the CPU name the first bad one at once; on a GPU
    the check is read with the next transfer to the host (`backend.check_later`), costing no sync of its own."""
    if targets.size == 0:
        return
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= n_classes))
    if xp is not backend.module_for("cpu"):
        backend.check_later(bad.any(), IndexError(f"a target id is out of range for {n_classes} classes "
                                                  "(detected on the GPU, after the op ran)"))
    elif bad.any():
        raise IndexError(f"target id {int(targets[bad][0])} is out of range for {n_classes} classes")


def _valid_count(valid, dtype, reduction: str):
    """How many targets count towards a mean, as a 0-d array of the loss dtype: it stays on the device (reading
    it back to the host would cost a sync in every call)."""
    return valid.sum(dtype=dtype) if reduction == "mean" else None


def _row_weights(xp, grad, valid, valid_count, reduction: str):
    """Each row's share of the upstream gradient: grad, divided by the number of valid rows for "mean", and 0 for
    ignored rows, also when every row is ignored (the mean is then 0/0 = NaN, and its gradient 0, as in PyTorch)."""
    if reduction == "mean":
        grad = grad / xp.maximum(valid_count, 1)
    return xp.where(valid, grad, 0)


def _reduce_loss(xp, per_item, valid_count, reduction: str):
    """Sum or mean of the per-item losses; a mean over no valid item is NaN (0/0, as in PyTorch), without NumPy's
    division warning."""
    if reduction == "none":
        return per_item
    total = per_item.sum()
    if reduction == "sum":
        return total
    return xp.where(valid_count > 0, total / xp.maximum(valid_count, 1), xp.nan).astype(total.dtype, copy=False)


class CrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood over logits [N, C] and class ids [N].

    Label smoothing follows PyTorch: the target distribution is (1 − ε)·onehot + ε/C, so the loss is
    (1 − ε)·(−log p_t) + ε·mean_c(−log p_c). The gradient is softmax − target distribution, per valid row.
    """

    def forward(self, logits, targets, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        xp = self.xp
        n_classes = logits.shape[1]
        _check_targets(xp, targets, n_classes, ignore_index)
        valid = targets != ignore_index
        safe_targets = xp.where(valid, targets, 0)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_normalizer = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted
        log_probs -= log_normalizer
        nll = -xp.take_along_axis(log_probs, safe_targets[:, None], axis=1)[:, 0]
        if label_smoothing:
            nll = (1 - label_smoothing) * nll - label_smoothing * log_probs.mean(axis=1)
        per_item = xp.where(valid, nll, 0).astype(logits.dtype, copy=False)
        self.valid_count = _valid_count(valid, logits.dtype, reduction)
        self.options = (label_smoothing, reduction)
        self.ignore_index = ignore_index
        self.save_for_backward(log_probs, safe_targets, valid, logits, targets)  # the last two for `composed`
        return _reduce_loss(xp, per_item, self.valid_count, reduction)

    def composed(self, logits, targets):
        return composed.cross_entropy(logits, targets, self.ignore_index, *self.options)

    def backward(self, grad):
        xp = self.xp
        log_probs, targets, valid = self.saved[:3]
        label_smoothing, reduction = self.options
        grad_logits = xp.exp(log_probs)  # a new array: with retain_graph the saved log_probs are used again
        if label_smoothing:
            grad_logits -= label_smoothing / log_probs.shape[1]
        rows = xp.arange(targets.shape[0])
        grad_logits[rows, targets] -= 1 - label_smoothing
        row_scale = _row_weights(xp, grad, valid, self.valid_count, reduction)
        grad_logits *= row_scale[:, None].astype(grad_logits.dtype, copy=False)
        return grad_logits, None


class NllLoss(Function):
    """Negative log-likelihood of log-probabilities [N, C] at class ids [N] (pair it with log_softmax)."""

    def forward(self, log_probs, targets, ignore_index=-100, reduction="mean"):
        xp = self.xp
        _check_targets(xp, targets, log_probs.shape[1], ignore_index)
        valid = targets != ignore_index
        safe_targets = xp.where(valid, targets, 0)
        picked = -xp.take_along_axis(log_probs, safe_targets[:, None], axis=1)[:, 0]
        per_item = xp.where(valid, picked, 0).astype(log_probs.dtype, copy=False)
        self.valid_count = _valid_count(valid, log_probs.dtype, reduction)
        self.input_shape, self.reduction = log_probs.shape, reduction
        self.save_for_backward(safe_targets, valid)
        return _reduce_loss(xp, per_item, self.valid_count, reduction)

    def backward(self, grad):
        xp = self.xp
        targets, valid = self.saved
        weights = _row_weights(xp, grad, valid, self.valid_count, self.reduction)
        return scatter_add(xp, -weights, (xp.arange(targets.shape[0]), targets), self.input_shape), None


def _classes_last(input: Tensor, target) -> tuple[Tensor, Tensor, tuple]:
    """PyTorch puts classes on axis 1 ([N, C, d1, …]); flatten to [N·d1·…, C] rows and matching targets.
    Host targets (lists, NumPy) go to the input's device; a Tensor stays where it is (mixing devices is an error)."""
    target = target if isinstance(target, Tensor) else Tensor(target, device=input.device)
    if input.ndim == 1:
        return input.reshape(1, -1), target.reshape(1), ()
    if input.ndim == 2:
        return input, target, target.shape
    moved = input.permute(0, *range(2, input.ndim), 1)
    return moved.reshape(-1, input.shape[1]), target.reshape(-1), target.shape


def _check_loss_shapes(op: str, input: Tensor, target: Tensor) -> None:
    if target.shape[0] != input.shape[0]:
        raise ValueError(f"{op}: input {input.shape} and target {target.shape} disagree on the batch size")
    if backend.is_floating(target.dtype):
        raise TypeError(f"{op}: targets must be integer class ids, got dtype {target.dtype}")


def cross_entropy(input: Tensor, target, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits against class ids, as torch.nn.functional.cross_entropy."""
    require_floating("cross_entropy", input)
    rows, target_rows, target_shape = _classes_last(input, target)
    _check_loss_shapes("cross_entropy", rows, target_rows)
    loss = CrossEntropy.apply(rows, target_rows, ignore_index=ignore_index, label_smoothing=label_smoothing,
                              reduction=reduction)
    return loss.reshape(target_shape) if reduction == "none" else loss


def nll_loss(input: Tensor, target, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    require_floating("nll_loss", input)
    rows, target_rows, target_shape = _classes_last(input, target)
    _check_loss_shapes("nll_loss", rows, target_rows)
    loss = NllLoss.apply(rows, target_rows, ignore_index=ignore_index, reduction=reduction)
    return loss.reshape(target_shape) if reduction == "none" else loss


# ---- normalisation ------------------------------------------------------------------------------------------------
def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(‖input‖_p, eps) along `dim`, as torch.nn.functional.normalize (composed; the norm's backward
    lives in `ops.reduce.Norm`)."""
    return input / clamp(norm(input, p, dim, keepdim=True), min=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """x1·x2 / (max(‖x1‖, eps)·max(‖x2‖, eps)) along `dim`, x1 and x2 broadcast together first. Each vector is
    normalised before the dot product, as PyTorch does since 1.12: the result stays in [−1, 1], and long or huge
    vectors lose no precision to a product of norms."""
    x1, x2 = operands(x1, x2)
    require_floating("cosine_similarity", x1)
    check_broadcastable("cosine_similarity", x1, x2)
    shape = x1.xp.broadcast_shapes(x1.shape, x2.shape)
    x1, x2 = (x if x.shape == shape else expand(x, *shape) for x in (x1, x2))
    return (normalize(x1, 2, dim, eps) * normalize(x2, 2, dim, eps)).sum(dim)


class LayerNorm(Function):
    """y = (x − μ)/√(σ² + eps)·w + b over rows of `width` elements: the last axis, or the last few axes flattened
    (PyTorch's multi-axis normalized_shape; w and b then arrive flattened too). Ba et al. 2016, σ² biased.

    Saves x̂ and 1/σ; backward (`_normalization_backward`): dx = (1/σ)·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with
    dx̂ = dy·w. Row means and
    row dot products go through `_row_mean`/`_row_dot` (a BLAS matrix-vector product and a one-pass einsum)
    rather than NumPy reductions of fresh temporaries: the same numbers, a third of the memory traffic.
    """

    def forward(self, x, *params, eps=1e-5, width=None):
        rows = x.reshape(-1, width or x.shape[-1])
        centered = rows - _row_mean(self.xp, rows)
        rstd = 1 / self.xp.sqrt(_row_dot(self.xp, centered, centered) + eps)
        normalized = centered
        normalized *= rstd
        weight = params[0] if params else None
        self.eps, self.width = eps, rows.shape[1]
        self.save_for_backward(normalized, rstd, weight, x, *params)  # x and params for `composed`
        out = normalized * weight if weight is not None else normalized.copy()
        if len(params) == 2:
            out += params[1]
        return out.reshape(x.shape)

    def backward(self, grad):
        return _normalization_backward(self, grad, centered=True)

    def composed(self, x, *params):
        rows = x.reshape(-1, self.width)
        return composed.layer_norm(rows, *params, eps=self.eps).reshape(*x.shape)


class RMSNorm(Function):
    """y = x/√(mean(x²) + eps)·w over rows of `width` elements, as LayerNorm (Zhang & Sennrich 2019; LLaMA). No
    centering, no bias."""

    def forward(self, x, *params, eps=1e-6, width=None):
        rows = x.reshape(-1, width or x.shape[-1])
        rstd = 1 / self.xp.sqrt(_row_dot(self.xp, rows, rows) + eps)
        normalized = rows * rstd
        weight = params[0] if params else None
        self.eps, self.width = eps, rows.shape[1]
        self.save_for_backward(normalized, rstd, weight, x)  # x for `composed`
        return (normalized * weight if weight is not None else normalized).reshape(x.shape)

    def backward(self, grad):
        return _normalization_backward(self, grad, centered=False)

    def composed(self, x, *params):
        return composed.rms_norm(x.reshape(-1, self.width), *params, eps=self.eps).reshape(*x.shape)


def _normalization_backward(fn: Function, grad, centered: bool) -> tuple:
    """Backward of layer norm (centered) and RMS norm from the saved x̂, 1/σ and weight:
    dx = (1/σ)·(dx̂ − x̂·mean(dx̂·x̂) [− mean(dx̂) when centered]), dx̂ = dy·w; then dw, db."""
    normalized, rstd, weight = fn.saved[:3]
    grad_rows = grad.reshape(normalized.shape)
    d_normalized = grad_rows * weight if weight is not None else grad_rows
    grad_x = None
    if fn.needs_input_grad[0]:
        grad_x = d_normalized - normalized * _row_dot(fn.xp, d_normalized, normalized)
        if centered:
            grad_x -= _row_mean(fn.xp, d_normalized)
        grad_x *= rstd
        grad_x = grad_x.reshape(grad.shape)
    return (grad_x, *_affine_grads(fn.xp, grad_rows, normalized, fn.needs_input_grad[1:]))


def _row_mean(xp, rows):
    """Mean of each row of [N, C] as [N, 1], by one matrix-vector product."""
    return (rows @ xp.full(rows.shape[1], 1 / rows.shape[1], dtype=rows.dtype))[:, None]


def _row_dot(xp, a, b):
    """mean(a·b) of each row of [N, C] as [N, 1], in one pass without a temporary."""
    return xp.einsum("ij,ij->i", a, b)[:, None] / a.dtype.type(a.shape[1])


def _affine_grads(xp, grad_rows, normalized, needs: tuple) -> list:
    """Gradients of the elementwise weight (Σ dy·x̂) and bias (Σ dy) over all rows."""
    grads = []
    if len(needs) >= 1:
        grads.append(xp.einsum("ij,ij->j", grad_rows, normalized) if needs[0] else None)
    if len(needs) == 2:
        grads.append(xp.ones(grad_rows.shape[0], dtype=grad_rows.dtype) @ grad_rows if needs[1] else None)
    return grads


def _normalized_width(op: str, x: Tensor, normalized_shape, *params: Tensor | None) -> int:
    """The number of elements normalised together: the product of `normalized_shape` (an int or a tuple), which
    must equal the input's last axes and every given parameter's shape, as PyTorch requires."""
    require_floating(op, x)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    given = [param for param in params if param is not None]
    if not shape or x.shape[x.ndim - len(shape):] != shape or any(param.shape != shape for param in given):
        shapes = " and ".join([f"input {x.shape}", *(f"{name} {param.shape}" for name, param in
                                                       zip(("weight", "bias"), params) if param is not None)])
        raise ValueError(f"{op}: normalized_shape {shape} must be the shape of the input's last {len(shape)} "
                         f"axes and of each parameter; got {shapes}")
    return math.prod(shape)


def _flat(param: Tensor) -> Tensor:
    """A parameter of a multi-axis normalized_shape as the flat vector the fused ops take (a view, and its
    gradient flows back through the reshape); a vector as it is."""
    return param if param.ndim == 1 else param.reshape(-1)


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Layer norm over the last len(normalized_shape) axes (an int means the last axis), as PyTorch's."""
    width = _normalized_width("layer_norm", x, normalized_shape, weight, bias)
    if bias is not None and weight is None:
        weight = Tensor._wrap(x.xp.ones(width, dtype=x.dtype))
    params = [_flat(p) for p in (weight, bias) if p is not None]
    return LayerNorm.apply(x, *params, eps=eps, width=width)


def rms_norm(x: Tensor, normalized_shape, weight: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """RMS norm over the last len(normalized_shape) axes (an int means the last axis), as PyTorch's."""
    width = _normalized_width("rms_norm", x, normalized_shape, weight)
    return RMSNorm.apply(x, *([_flat(weight)] if weight is not None else []), eps=eps, width=width)


# ---- dropout, one-hot and embedding ---------------------------------------------------------------------------------
def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Class ids [...] → int64 indicators [..., num_classes] (num_classes=-1: the largest id + 1), no gradient."""
    if backend.is_floating(tensor.dtype):
        raise TypeError(f"one_hot: class ids must be integers, got dtype {tensor.dtype}")
    ids = tensor.data
    if num_classes < 0:
        num_classes = int(ids.max()) + 1 if ids.size else 0  # one read of the ids (a sync on a GPU, as in PyTorch)
    if ids.size:
        out_of_range = (ids.min() < 0) | (ids.max() >= num_classes)
        error = IndexError(f"one_hot: class ids must lie in [0, {num_classes})")
        if tensor.device != "cpu":
            backend.check_later(out_of_range, error)
        elif out_of_range:
            raise error
    return Tensor._wrap((ids[..., None] == tensor.xp.arange(num_classes)).astype(backend.int64))


def dropout_mask(xp, shape, p: float, dtype, device: str):
    """A {0, 1/(1−p)} mask in the target dtype from the seeded generator (on the CPU from random bits, see
    `_keep_from_bits`; on a GPU from uniform floats drawn in the target dtype)."""
    if device == "cpu":
        keep = _keep_from_bits(backend.generator(device), shape, p)
    else:
        draw_dtype = dtype if dtype != backend.float16 else backend.float32
        keep = backend.generator(device).random(shape, dtype=draw_dtype) >= p
    return xp.multiply(keep, dtype.type(1 / (1 - p)), dtype=dtype)


def _keep_from_bits(generator, shape, p: float):
    """Booleans that are True with probability 1 − p, from 16 random bits per element compared with p·2¹⁶:
    four elements per 64-bit draw and no float conversion (p is rounded to a multiple of 2⁻¹⁶)."""
    size = math.prod(shape)
    words = generator.bit_generator.random_raw(-(-size // 4))
    bits = words.view(backend.numpy.uint16)[:size].reshape(shape)
    return bits >= backend.numpy.uint16(min(round(p * 65536), 65535))


class Dropout(Function):
    def forward(self, x, p=0.5):
        mask = dropout_mask(self.xp, x.shape, p, x.dtype, backend.device_of(x))
        self.save_for_backward(mask)
        return x * mask

    def backward(self, grad):
        return grad * self.saved[0]


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1−p) (inverted dropout); identity in eval."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    return Dropout.apply(x, p=p)


class Embedding(Function):
    """Rows of a weight table picked by ids. Backward adds each output gradient into its row (repeats add up).

    For small tables (a character vocabulary) the scatter-add is one matrix product, onehot(ids)ᵀ·grad: BLAS
    beats `add.at` tenfold there. Large tables (50k BPE tokens) scatter, since the one-hot matrix would be huge.
    """

    ONE_HOT_LIMIT = 1 << 22  # elements of the [V, N] one-hot matrix worth building instead of scattering

    def forward(self, weight, ids, padding_idx=None):
        self.ids, self.weight_shape, self.padding_idx = ids, weight.shape, padding_idx
        return weight[ids]

    def backward(self, grad):
        xp = self.xp
        vocab_size, width = self.weight_shape
        ids, rows = self.ids.reshape(-1), grad.reshape(-1, width)
        if vocab_size * ids.size <= self.ONE_HOT_LIMIT:
            one_hot = (xp.arange(vocab_size)[:, None] == ids[None, :]).astype(grad.dtype)
            if self.padding_idx is not None:
                one_hot[self.padding_idx] = 0
            return one_hot @ rows, None
        if self.padding_idx is not None:
            counted = ids != self.padding_idx
            ids, rows = ids[counted], rows[counted]
        return scatter_add(xp, rows, ids, self.weight_shape), None


def embedding(ids, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """weight[ids] for integer ids of any shape; ids outside [0, V) raise an error naming the id and V.
    Host ids (lists, NumPy) go to the weight's device; a Tensor stays where it is (mixing devices is an error)."""
    ids = ids if isinstance(ids, Tensor) else Tensor(ids, device=weight.device)
    if backend.is_floating(ids.dtype):
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    vocab_size = weight.shape[0]
    if ids.numel() and ids.device == "cpu":
        low, high = int(ids.data.min()), int(ids.data.max())
        if low < 0 or high >= vocab_size:
            raise IndexError(f"token id {high if high >= vocab_size else low} is out of range for a vocabulary "
                             f"of size {vocab_size}")
    elif ids.numel():
        backend.check_later((ids.data.min() < 0) | (ids.data.max() >= vocab_size),
                            IndexError(f"a token id is out of range for a vocabulary of size {vocab_size} "
                                       "(detected on the GPU, after the lookup ran)"))
    if padding_idx is not None and padding_idx < 0:
        padding_idx += vocab_size
    return Embedding.apply(weight, ids, padding_idx=padding_idx)
