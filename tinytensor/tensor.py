"""The `Tensor`: an array (NumPy or CuPy) plus what autograd needs to know about it.

A tensor holds `.data` (the raw array), `.requires_grad`, `.grad` (a Tensor, filled by `backward`) and, when an op
made it, `._node`: the `Function` that will send gradient back to that op's inputs. Every operator and method
here is a thin door into `tinytensor.ops`, where forward and backward live side by side.

Python scalars are "weak": `x * 2.0` keeps x's dtype (float32 stays float32), as in PyTorch, because the scalar is
turned into an array of x's dtype before the op. Integer tensors (ids, masks) never require grad.
"""
from __future__ import annotations

from typing import Any

import numpy

from tinytensor import autograd, backend

_PY_SCALARS = (bool, int, float)
_NUMBER_KINDS = "biufc"  # NumPy dtype kinds of bools, ints, unsigned ints, floats and complex numbers

_NUMPY_OPERATORS = {  # NumPy's ufunc behind an operator → the op tinytensor runs for `ndarray ∘ Tensor`
    "add": "add", "subtract": "sub", "multiply": "mul", "divide": "div", "power": "pow",
    "floor_divide": "floor_divide", "remainder": "remainder", "matmul": "matmul", "equal": "eq",
    "not_equal": "ne", "less": "lt", "less_equal": "le", "greater": "gt", "greater_equal": "ge",
}


class Tensor:
    """An n-dimensional array that can record the ops applied to it and differentiate through them."""

    __slots__ = ("data", "grad", "_requires_grad", "_node", "_hooks", "__weakref__")

    def __init__(self, data: Any, dtype=None, device: str | None = None, requires_grad: bool = False):
        self.data = _to_array(data, dtype, device)
        self.grad: Tensor | None = None
        self._node = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array, requires_grad: bool = False) -> Tensor:
        """Fast constructor for arrays ops have already made (no conversion, no checks)."""
        out = cls.__new__(cls)
        out.data, out.grad, out._node, out._requires_grad = array, None, None, requires_grad
        return out

    # ---- autograd state ------------------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and not backend.is_floating(self.data.dtype):
            raise TypeError(f"only floating-point tensors can require grad, got dtype {self.data.dtype}")
        if not value and self._node is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use .detach()")
        self._requires_grad = bool(value)

    def requires_grad_(self, value: bool = True) -> Tensor:
        self.requires_grad = value
        return self

    @property
    def grad_fn(self):
        """The op that made this tensor (a `Function` node of the graph), or None for a leaf or a tensor made
        without recording, as in PyTorch."""
        return self._node

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def detach_(self) -> Tensor:
        """Cut this tensor itself from the graph: it becomes a leaf that does not require grad (its data stays).
        PyTorch refuses this on some views; tinytensor's graph records no views, so here it always works."""
        self._node, self._requires_grad = None, False
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in `.grad` after backward."""
        if self._node is not None:
            autograd.retain_output_grad(self)

    def backward(self, grad: Tensor | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`. `grad` is required unless self has one element.

        With `create_graph=True` the backward pass is itself recorded: each `.grad` is then a Tensor with a graph,
        which can be differentiated again (see `tinytensor.autograd`). `retain_graph` defaults to `create_graph`.
        """
        if not self._requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (was it made under no_grad?)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a tensor with one element, got shape {self.shape}; "
                    "pass backward(grad) with a gradient of the same shape"
                )
            grad_array = self.xp.ones_like(self.data)
        else:
            grad_array = grad.data if isinstance(grad, Tensor) else _to_array(grad, self.dtype, self.device)
            if grad_array.dtype != self.dtype:  # the gradient takes the tensor's dtype, as in PyTorch
                grad_array = grad_array.astype(self.dtype)
            if grad_array.shape != self.data.shape:
                raise ValueError(f"backward: gradient shape {grad_array.shape} != tensor shape {self.data.shape}")
        if create_graph:  # the gradient enters the recorded backward as a Tensor (with its own graph, if any)
            grad_array = grad if isinstance(grad, Tensor) and grad.dtype == self.dtype else Tensor._wrap(grad_array)
        autograd.run_backward(self, grad_array, retain_graph, create_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ---- array facts -----------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def xp(self):
        return backend.array_module(self.data)

    def size(self, dim: int | None = None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    nelement = numel

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        return self.data.shape[0]

    def numpy(self):
        """A host NumPy array (a copy when the tensor lives on the GPU). Cannot be used while tracking grad."""
        return backend.to_numpy(self.data)

    def __array__(self, dtype=None, copy=None):
        """NumPy's view of a CPU tensor, for `np.asarray(t)` and libraries that call it (matplotlib's `plt.plot(t)`,
        `plt.imshow(h.abs() > 0.99)`). A GPU tensor is refused: an implicit copy to the host would hide a transfer,
        so call `.cpu()` or `.numpy()` first."""
        if self.device != "cpu":
            raise TypeError(f"a {self.device} tensor does not convert to a NumPy array implicitly; call .cpu() or "
                            ".numpy() first")
        array = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return array.copy() if copy else array

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return backend.to_numpy(self.data).item()

    def tolist(self):
        return self.numpy().tolist()

    def __repr__(self) -> str:
        extras = "" if self.device == "cpu" else f", device='{self.device}'"
        extras += f", dtype={self.dtype}"
        if self._node is not None:
            extras += f", grad_fn={type(self._node).__name__}"
        elif self._requires_grad:
            extras += ", requires_grad=True"
        body = str(self.numpy()).replace("\n", "\n       ")
        return f"tensor({body}{extras})"

    def __bool__(self) -> bool:
        return bool(self.data)

    def __index__(self) -> int:
        """A one-element integer tensor used as an index or slice bound (`data[i:i + 8]` with `i` from randint)."""
        if self.data.size != 1 or backend.is_floating(self.dtype):
            raise TypeError(f"only integer tensors of a single element can be converted to an index, got dtype "
                            f"{self.dtype} and shape {self.shape}")
        return int(self.data.item())

    def __format__(self, spec: str) -> str:
        """`f"{loss:.4f}"` formats a 0-d tensor's number, as PyTorch; other tensors take only an empty spec."""
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __iter__(self):
        """Iterate over the first axis (each item a tensor, in the graph), as PyTorch."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (ops.getitem(self, i) for i in range(self.data.shape[0]))

    def register_hook(self, hook):
        """Call `hook(grad)` when this tensor's gradient is computed; a Tensor it returns replaces the gradient.
        Returns a handle whose `.remove()` unregisters it."""
        return autograd.add_hook(self, hook)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __hash__(self) -> int:
        return id(self)

    # ---- conversion ------------------------------------------------------------------------------------------
    def to(self, *args, device=None, dtype=None, non_blocking: bool = False, copy: bool = False) -> Tensor:
        """PyTorch's forms: to(device), to(dtype), to(device, dtype), to(other) (other's device and dtype), and the
        same as keywords. Moves and casts are differentiable; the tensor itself comes back when nothing changes,
        unless `copy=True`. `non_blocking` is accepted: tinytensor's copies are synchronous."""
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, str):  # also a tt.device
                device = arg
            else:
                dtype = arg
        out = self
        if device is not None and backend.normalize_device(device) != self.device:
            out = ops.to_device(out, device)
        if dtype is not None:
            out = out.type(dtype)
        return ops.clone(out) if copy and out is self else out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def pin_memory(self) -> Tensor:
        """The tensor itself: page-locked host memory is a CUDA-runtime feature tinytensor does not use."""
        return self

    def is_floating_point(self) -> bool:
        return backend.is_floating(self.data.dtype)

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda"

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def type(self, dtype) -> Tensor:
        return ops.cast(self, dtype)

    def float(self) -> Tensor:
        return ops.cast(self, backend.float32)

    def double(self) -> Tensor:
        return ops.cast(self, backend.float64)

    def half(self) -> Tensor:
        return ops.cast(self, backend.float16)

    def long(self) -> Tensor:
        return ops.cast(self, backend.int64)

    def int(self) -> Tensor:
        return ops.cast(self, backend.int32)

    def bool(self) -> Tensor:
        return ops.cast(self, backend.bool_)

    def type_as(self, other: Tensor) -> Tensor:
        """This tensor in `other`'s dtype and on `other`'s device (differentiable, like `to`)."""
        return ops.cast(self, other.dtype).to(other.device)

    # ---- new tensors like this one (PyTorch's new_*: this tensor's dtype and device unless given) -------------
    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return ops.zeros(*size, **self._like(dtype, device), requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return ops.ones(*size, **self._like(dtype, device), requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
        return ops.empty(*size, **self._like(dtype, device), requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
        return ops.full(size, fill_value, **self._like(dtype, device), requires_grad=requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False) -> Tensor:
        """A copy of `data` (not in any graph) in this tensor's dtype and on its device unless given."""
        return ops.tensor(data, **self._like(dtype, device), requires_grad=requires_grad)

    def _like(self, dtype, device) -> dict:
        return {"dtype": self.dtype if dtype is None else dtype, "device": self.device if device is None else device}

    def clone(self) -> Tensor:
        return ops.clone(self)

    def contiguous(self) -> Tensor:
        """Self when the array is C-contiguous, else a C-ordered copy (what `.view` needs after a transpose)."""
        return ops.contiguous(self)

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    # ---- operators -------------------------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        """NumPy meeting a Tensor. Writing into a raw array (`p.data += -lr * p.grad`, the hand-written SGD step of
        micrograd and makemore) uses the Tensors' arrays and records nothing, as PyTorch's `.data` arithmetic does;
        `ndarray ∘ Tensor` for an operator gives the Tensor op, as `Tensor ∘ ndarray` does. Anything else is
        refused: call the tinytensor op, or `.numpy()` first."""
        if method != "__call__" or kwargs:
            return NotImplemented
        if out is not None:
            if any(isinstance(target, Tensor) for target in out):
                return NotImplemented
            return ufunc(*(value.data if isinstance(value, Tensor) else value for value in inputs), out=out)
        op_name = _NUMPY_OPERATORS.get(ufunc.__name__)
        return NotImplemented if op_name is None else getattr(ops, op_name)(*inputs)

    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __floordiv__(self, other):
        return ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return ops.floor_divide(other, self)

    def __mod__(self, other):
        return ops.remainder(self, other)

    def __rmod__(self, other):
        return ops.remainder(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    # the operators as methods, under PyTorch's names and aliases
    def add(self, other, *, alpha=1):
        return ops.add(self, other if alpha == 1 else ops.mul(other, alpha))

    def sub(self, other, *, alpha=1):
        return ops.sub(self, other if alpha == 1 else ops.mul(other, alpha))

    def mul(self, other):
        return ops.mul(self, other)

    def div(self, other, *, rounding_mode=None):
        """True division, or rounded toward −∞ (`rounding_mode="floor"`) or toward zero ("trunc"), as PyTorch's."""
        if rounding_mode not in (None, "floor", "trunc"):
            raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
        if rounding_mode == "floor":
            return ops.floor_divide(self, other)
        if rounding_mode == "trunc" and not backend.is_floating(self.dtype):  # exact for integers: a − fmod(a, b)
            return ops.floor_divide(ops.sub(self, ops.fmod(self, other)), other)  # is a multiple of b
        quotient = ops.div(self, other)
        return ops.trunc(quotient) if rounding_mode == "trunc" else quotient

    def pow(self, exponent):
        return ops.pow(self, exponent)

    def neg(self):
        return ops.neg(self)

    def matmul(self, other):
        return ops.matmul(self, other)

    def eq(self, other):
        return ops.eq(self, other)

    def ne(self, other):
        return ops.ne(self, other)

    def lt(self, other):
        return ops.lt(self, other)

    def le(self, other):
        return ops.le(self, other)

    def gt(self, other):
        return ops.gt(self, other)

    def ge(self, other):
        return ops.ge(self, other)

    def maximum(self, other):
        return ops.maximum(self, other)

    def minimum(self, other):
        return ops.minimum(self, other)

    def where(self, condition, other):
        """torch.Tensor.where: self where `condition` holds, else `other`."""
        return ops.where(condition, self, other)

    subtract, multiply, divide, true_divide, negative = sub, mul, div, div, neg

    def __getitem__(self, index):
        return ops.getitem(self, index)

    def __setitem__(self, index, value):
        """In-place write into a tensor that is not part of a graph (e.g. building inputs or masks)."""
        if self._requires_grad and autograd.is_grad_enabled():
            raise RuntimeError("in-place assignment to a tensor that requires grad; do it under tt.no_grad()")
        value = value.data if isinstance(value, Tensor) else value
        self.data[ops.index_arrays(index, self.xp)] = value
        autograd.note_in_place_write(self.data)

    def __eq__(self, other):  # noqa: D105 - elementwise, as in PyTorch
        return ops.eq(self, other)

    def __ne__(self, other):
        return ops.ne(self, other)

    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __invert__(self):
        return ops.logical_not(self)

    def __and__(self, other):
        return ops.logical_and(self, other)

    def __or__(self, other):
        return ops.logical_or(self, other)

    # ---- methods (each is the function of the same name in tinytensor.ops) ------------------------------------
    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def rsqrt(self):
        return ops.rsqrt(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def abs(self):
        return ops.abs(self)

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        return ops.clamp(self, min, max)

    def masked_fill(self, mask, value):
        return ops.masked_fill(self, mask, value)

    def sum(self, dim=None, keepdim=False, axis=None, keepdims=None):
        return ops.sum(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def mean(self, dim=None, keepdim=False, axis=None, keepdims=None):
        return ops.mean(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def max(self, dim=None, keepdim=False, axis=None, keepdims=None):
        return ops.max(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def min(self, dim=None, keepdim=False, axis=None, keepdims=None):
        return ops.min(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def amax(self, dim=None, keepdim=False):
        return ops.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return ops.amin(self, dim, keepdim)

    def var(self, dim=None, unbiased=True, keepdim=False, *, correction=None, axis=None, keepdims=None):
        return ops.var(self, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims)

    def std(self, dim=None, unbiased=True, keepdim=False, *, correction=None, axis=None, keepdims=None):
        return ops.std(self, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims)

    def norm(self, p=2.0, dim=None, keepdim=False):
        return ops.norm(self, p, dim, keepdim)

    def cumsum(self, dim, *, dtype=None):
        return ops.cumsum(self, dim, dtype=dtype)

    def logsumexp(self, dim=None, keepdim=False, axis=None, keepdims=None):
        return ops.logsumexp(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def argmax(self, dim=None, keepdim=False):
        return ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return ops.argmin(self, dim, keepdim)

    def sort(self, dim=-1, descending=False, stable=False):
        return ops.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return ops.argsort(self, dim, descending, stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - PyTorch's name
        return ops.topk(self, k, dim, largest, sorted)

    def softmax(self, dim=-1):
        return ops.softmax(self, dim)

    def log_softmax(self, dim=-1):
        return ops.log_softmax(self, dim)

    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    def view(self, *shape):
        """reshape without a copy; raises, as PyTorch, when the strides do not allow it (see `ops.view`)."""
        return ops.view(self, *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def transpose(self, dim0=-2, dim1=-1):
        return ops.transpose(self, dim0, dim1)

    def permute(self, *dims):
        return ops.permute(self, *dims)

    def swapaxes(self, axis0, axis1):
        """transpose under NumPy's name (PyTorch has both), so array code runs on Tensors unchanged."""
        return ops.transpose(self, axis0, axis1)

    def t(self):
        """Transpose a matrix; vectors and scalars come back as they are (PyTorch's t)."""
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with at most 2 dimensions, got shape {self.shape}; use transpose")
        return ops.transpose(self, 0, 1) if self.ndim == 2 else self

    swapdims = swapaxes

    def movedim(self, source, destination):
        return ops.movedim(self, source, destination)

    moveaxis = movedim

    @property
    def T(self):  # noqa: N802 - NumPy's name
        """All axes reversed, as NumPy's and PyTorch's `.T` (PyTorch warns that this is deprecated for ndim ≠ 2)."""
        return ops.permute(self, *reversed(range(self.ndim)))

    @property
    def mT(self):  # noqa: N802 - PyTorch's name
        """The last two axes swapped: a matrix, or each matrix of a batch, transposed."""
        if self.ndim < 2:
            raise ValueError(f"mT: needs a matrix or a batch of matrices (at least 2 dims), got shape {self.shape}")
        return ops.transpose(self, -2, -1)

    def unflatten(self, dim, sizes):
        return ops.unflatten(self, dim, sizes)

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return ops.squeeze(self, dim)

    def expand(self, *shape):
        return ops.expand(self, *shape)

    def split(self, split_size, dim=0):
        return ops.split(self, split_size, dim)

    def chunk(self, chunks, dim=0):
        return ops.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return ops.unbind(self, dim)

    def select(self, dim, index):
        return ops.select(self, dim, index)

    def narrow(self, dim, start, length):
        return ops.narrow(self, dim, start, length)

    def flip(self, *dims):
        return ops.flip(self, *dims)

    def fliplr(self):
        return ops.fliplr(self)

    def flipud(self):
        return ops.flipud(self)

    def masked_select(self, mask):
        return ops.masked_select(self, mask)

    def nonzero(self, *, as_tuple=False):
        return ops.nonzero(self, as_tuple=as_tuple)

    def argwhere(self):
        return ops.argwhere(self)

    def gather(self, dim, index):
        return ops.gather(self, dim, index)

    def take_along_dim(self, indices, dim=None):
        return ops.take_along_dim(self, indices, dim)

    def tan(self):
        return ops.tan(self)

    def asin(self):
        return ops.asin(self)

    def acos(self):
        return ops.acos(self)

    def atan(self):
        return ops.atan(self)

    def sinh(self):
        return ops.sinh(self)

    def cosh(self):
        return ops.cosh(self)

    def atan2(self, other):
        return ops.atan2(self, other)

    def logaddexp(self, other):
        return ops.logaddexp(self, other)

    def hypot(self, other):
        return ops.hypot(self, other)

    def logit(self, eps=None):
        return ops.logit(self, eps)

    def cumprod(self, dim, *, dtype=None):
        return ops.cumprod(self, dim, dtype=dtype)

    def cummax(self, dim):
        return ops.cummax(self, dim)

    def median(self, dim=None, keepdim=False):
        return ops.median(self, dim, keepdim)

    def quantile(self, q, dim=None, keepdim=False, *, interpolation="linear"):
        return ops.quantile(self, q, dim, keepdim, interpolation=interpolation)

    def nansum(self, dim=None, keepdim=False):
        return ops.nansum(self, dim, keepdim)

    def nanmean(self, dim=None, keepdim=False):
        return ops.nanmean(self, dim, keepdim)

    def clip(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        return ops.clamp(self, min, max)

    def diagonal(self, offset=0, dim1=0, dim2=1):
        return ops.diagonal(self, offset, dim1, dim2)

    def diag(self, diagonal=0):
        return ops.diag(self, diagonal)

    def trace(self):
        return ops.trace(self)

    def count_nonzero(self, dim=None):
        return ops.count_nonzero(self, dim)

    def unique(self, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
        return ops.unique(self, sorted, return_inverse, return_counts, dim)

    def bincount(self, weights=None, minlength=0):
        return ops.bincount(self, weights, minlength)

    def tril(self, diagonal=0):
        return ops.tril(self, diagonal)

    def triu(self, diagonal=0):
        return ops.triu(self, diagonal)

    def roll(self, shifts, dims=None):
        return ops.roll(self, shifts, dims)

    def repeat(self, *sizes):
        return ops.repeat(self, *sizes)

    def expand_as(self, other):
        return ops.expand(self, *other.shape)

    def view_as(self, other):
        return ops.view(self, *other.shape)

    def reshape_as(self, other):
        return ops.reshape(self, *other.shape)

    def index_select(self, dim, index):
        return ops.index_select(self, dim, index)

    def scatter(self, dim, index, src=None, *, value=None, reduce=None):
        return ops.scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_add(self, dim, index, src):
        return ops.scatter_add(self, dim, index, src)

    def floor_divide(self, other):
        return ops.floor_divide(self, other)

    def remainder(self, other):
        return ops.remainder(self, other)

    def fmod(self, other):
        return ops.fmod(self, other)

    def sin(self):
        return ops.sin(self)

    def cos(self):
        return ops.cos(self)

    def log1p(self):
        return ops.log1p(self)

    def expm1(self):
        return ops.expm1(self)

    def log2(self):
        return ops.log2(self)

    def log10(self):
        return ops.log10(self)

    def reciprocal(self):
        return ops.reciprocal(self)

    def square(self):
        return ops.square(self)

    def floor(self):
        return ops.floor(self)

    def ceil(self):
        return ops.ceil(self)

    def round(self, decimals=0):
        return ops.round(self, decimals)

    def trunc(self):
        return ops.trunc(self)

    def frac(self):
        return ops.frac(self)

    def sign(self):
        return ops.sign(self)

    def clamp_min(self, min):  # noqa: A002 - PyTorch's name
        return ops.clamp_min(self, min)

    def clamp_max(self, max):  # noqa: A002 - PyTorch's name
        return ops.clamp_max(self, max)

    def isnan(self):
        return ops.isnan(self)

    def isinf(self):
        return ops.isinf(self)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return ops.isclose(self, other, rtol, atol, equal_nan)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return ops.allclose(self, other, rtol, atol, equal_nan)

    def equal(self, other):
        return ops.equal(self, other)

    def logical_xor(self, other):
        return ops.logical_xor(self, other)

    def prod(self, dim=None, keepdim=False, *, dtype=None):
        return ops.prod(self, dim, keepdim, dtype=dtype)

    def any(self, dim=None, keepdim=False):
        return ops.any(self, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return ops.all(self, dim, keepdim)

    def mm(self, mat2):
        return ops.mm(self, mat2)

    def bmm(self, mat2):
        return ops.bmm(self, mat2)

    def mv(self, vec):
        return ops.mv(self, vec)

    def dot(self, other):
        return ops.dot(self, other)

    def outer(self, vec2):
        return ops.outer(self, vec2)

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        return ops.addmm(self, mat1, mat2, beta=beta, alpha=alpha)

    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return ops.baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def lerp(self, end, weight):
        return ops.lerp(self, end, weight)

    def addcmul(self, tensor1, tensor2, *, value=1):
        return ops.addcmul(self, tensor1, tensor2, value=value)

    def addcdiv(self, tensor1, tensor2, *, value=1):
        return ops.addcdiv(self, tensor1, tensor2, value=value)

    # ---- in-place methods (tinytensor.ops.inplace: PyTorch's rules for leaves and for graphs) ---------------------
    def add_(self, other, *, alpha=1):
        return ops.inplace.add_(self, other, alpha)

    def sub_(self, other, *, alpha=1):
        return ops.inplace.sub_(self, other, alpha)

    def mul_(self, other):
        return ops.inplace.mul_(self, other)

    def div_(self, other):
        return ops.inplace.div_(self, other)

    def clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        return ops.inplace.clamp_(self, min, max)

    def clamp_min_(self, min):  # noqa: A002 - PyTorch's name
        return ops.inplace.clamp_min_(self, min)

    def clamp_max_(self, max):  # noqa: A002 - PyTorch's name
        return ops.inplace.clamp_max_(self, max)

    def abs_(self):
        return ops.inplace.abs_(self)

    def sqrt_(self):
        return ops.inplace.sqrt_(self)

    def exp_(self):
        return ops.inplace.exp_(self)

    def log_(self):
        return ops.inplace.log_(self)

    def neg_(self):
        return ops.inplace.neg_(self)

    def sigmoid_(self):
        return ops.inplace.sigmoid_(self)

    def tanh_(self):
        return ops.inplace.tanh_(self)

    def relu_(self):
        return ops.inplace.relu_(self)

    def floor_(self):
        return ops.inplace.floor_(self)

    def round_(self, decimals=0):
        return ops.inplace.round_(self, decimals)

    def remainder_(self, other):
        return ops.inplace.remainder_(self, other)

    def floor_divide_(self, other):
        return ops.inplace.floor_divide_(self, other)

    def lerp_(self, end, weight):
        return ops.inplace.lerp_(self, end, weight)

    def addcmul_(self, tensor1, tensor2, *, value=1):
        return ops.inplace.addcmul_(self, tensor1, tensor2, value)

    def addcdiv_(self, tensor1, tensor2, *, value=1):
        return ops.inplace.addcdiv_(self, tensor1, tensor2, value)

    def masked_fill_(self, mask, value):
        return ops.inplace.masked_fill_(self, mask, value)

    def fill_(self, value):
        return ops.inplace.fill_(self, value)

    def zero_(self):
        return ops.inplace.zero_(self)

    def copy_(self, source):
        return ops.inplace.copy_(self, source)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        return ops.inplace.normal_(self, mean, std, generator)

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        return ops.inplace.uniform_(self, a, b, generator)

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
        return ops.inplace.scatter_(self, dim, index, src, value=value, reduce=reduce)

    def scatter_add_(self, dim, index, src):
        return ops.inplace.scatter_add_(self, dim, index, src)

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_
    __imod__ = remainder_
    __ifloordiv__ = floor_divide_


def _to_array(data, dtype=None, device=None):
    """Turn what torch.tensor takes (nested lists, tuples and ranges of numbers, Python and NumPy scalars, arrays,
    Tensors) into an array on `device` (default: where the data is, else CPU); TypeError names anything else.

    Python floats become float32 (the default dtype), Python ints int64 and bools bool, as in PyTorch;
    existing arrays and NumPy scalars keep their dtype unless `dtype` is given.
    """
    if isinstance(data, Tensor):
        data = data.data
    on_gpu = backend.is_cupy_array(data)
    xp = backend.module_for(device or ("cuda" if on_gpu else "cpu"))
    if on_gpu or isinstance(data, numpy.ndarray):
        if data.dtype.kind not in _NUMBER_KINDS:
            raise TypeError(f"tensor(): expected an array of numbers, got an array of dtype {data.dtype}")
        return xp.asarray(backend.to_device(data, device) if device else data, dtype=dtype)
    host = _host_array(data)
    if dtype is None and not isinstance(data, numpy.generic):
        dtype = backend.DEFAULT_FLOAT if host.dtype.kind == "f" else host.dtype
    return xp.asarray(host, dtype=dtype)


def _host_array(data) -> numpy.ndarray:
    """Numbers or nested sequences of them (Tensors among them count as their values) as a NumPy array;
    TypeError naming the type of the first thing that is not a number."""
    array = numpy.asarray(data)
    if array.dtype.kind == "O" and isinstance(data, (list, tuple)):
        array = numpy.asarray(_tensors_as_arrays(data))
    if array.dtype.kind not in _NUMBER_KINDS:
        raise TypeError(f"tensor(): expected numbers, (nested) lists, tuples or ranges of numbers, an array or a "
                        f"Tensor; got {_not_a_number(data)}")
    return array


def _tensors_as_arrays(data):
    """`data` with each Tensor inside its nested lists and tuples replaced by a host array of its values."""
    if isinstance(data, Tensor):
        return backend.to_numpy(data.data)
    return [_tensors_as_arrays(item) for item in data] if isinstance(data, (list, tuple)) else data


def _not_a_number(data) -> str:
    """The type of the first leaf of `data` that is not a number, said as 'str' or 'a list holding str'."""
    if isinstance(data, (list, tuple, range)):
        leaves = [_not_a_number(item) for item in data]
        bad = next((leaf for leaf in leaves if leaf), None)
        return bad and f"a {type(data).__name__} holding {bad}"
    if isinstance(data, (*_PY_SCALARS, complex, numpy.number, numpy.bool_, Tensor)):
        return ""
    return type(data).__name__


from tinytensor import ops  # noqa: E402 - ops build on Tensor, and Tensor's methods call ops
