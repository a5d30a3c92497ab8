"""Small helpers every op family shares: weak Python scalars, dtype agreement, axis arguments."""
from __future__ import annotations

from tinytensor import backend
from tinytensor.tensor import Tensor

PY_SCALARS = (bool, int, float)


def lift(value, like: Tensor | None = None) -> Tensor:
    """Make `value` a Tensor. A Python scalar takes `like`'s dtype and device ("weak" scalars, as in PyTorch)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, PY_SCALARS) and like is not None:
        dtype = like.dtype
        if isinstance(value, float) and not backend.is_floating(dtype):
            dtype = backend.DEFAULT_FLOAT
        return Tensor._wrap(like.xp.asarray(value, dtype=dtype))
    return Tensor(value)


def operands(a, b) -> tuple[Tensor, Tensor]:
    """Two Tensors of one dtype: scalars are lifted weakly; ints join floats; float32 meets float64 as float64."""
    a = lift(a, b if isinstance(b, Tensor) else None)
    b = lift(b, a)
    if a.dtype != b.dtype:
        dtype = result_dtype(a.dtype, b.dtype)
        a, b = (a if a.dtype == dtype else cast_tensor(a, dtype)), (b if b.dtype == dtype else cast_tensor(b, dtype))
    return a, b


def result_dtype(a, b):
    """PyTorch's rule: a float beats an int whatever their widths; otherwise the wider of the two."""
    a_float, b_float = backend.is_floating(a), backend.is_floating(b)
    if a_float != b_float:
        return a if a_float else b
    return a if a.itemsize >= b.itemsize else b


def cast_tensor(tensor: Tensor, dtype) -> Tensor:
    from tinytensor.ops.elementwise import cast

    return cast(tensor, dtype)


def axis_arg(dim, axis):
    """Accept PyTorch's `dim` or NumPy's `axis`; lists become tuples."""
    chosen = axis if axis is not None else dim
    return tuple(chosen) if isinstance(chosen, list) else chosen


def dim_index(op: str, dim: int, shape: tuple) -> int:
    """`dim` (negative counts from the end) as an axis of `shape`; IndexError naming the op, the dim and the
    shape when there is no such axis, instead of NumPy's error from deep inside the op."""
    ndim = len(shape)
    if not -ndim <= dim < ndim:
        valid = f"dims run from {-ndim} to {ndim - 1}" if ndim else "a 0-d tensor has no dims"
        raise IndexError(f"{op}: dim {dim} is out of range for shape {shape} ({valid})")
    return dim % ndim


def keepdims_arg(keepdim: bool, keepdims: bool | None) -> bool:
    return bool(keepdim if keepdims is None else keepdims)


def shape_arg(shape) -> tuple:
    """`reshape(2, 3)` and `reshape((2, 3))` both mean (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(n) for n in shape)


def require_floating(op: str, x: Tensor) -> None:
    """TypeError naming `op` and the dtype when x is not floating-point: softmax, norms and the like of integers
    would round every step to an integer or fail deep inside NumPy."""
    if not backend.is_floating(x.dtype):
        raise TypeError(f"{op}: needs a floating-point input, got dtype {x.dtype}; convert it with .float()")


def check_broadcastable(op: str, a: Tensor, b: Tensor) -> None:
    """Raise a ValueError naming the op and both shapes when they cannot broadcast."""
    for m, n in zip(reversed(a.shape), reversed(b.shape)):
        if m != n and m != 1 and n != 1:
            raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")
