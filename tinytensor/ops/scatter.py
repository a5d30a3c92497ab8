"""Indexing along one axis with PyTorch's rules: index_select, scatter, scatter_add (gather is in ops/shape.py).

For dim = 0 of a 3-d tensor (the other axes alike):

    index_select   out[i, j, k] = a[index[i], j, k]             index 1-d; out's axis `dim` has len(index) entries
    gather         out[i, j, k] = a[index[i, j, k], j, k]       out has index's shape
    scatter        out = a.clone(); out[index[i, j, k], j, k] = src[i, j, k]
    scatter_add    out = a.clone(); out[index[i, j, k], j, k] += src[i, j, k]   (repeated targets accumulate)

scatter is gather's mirror image, and each backward is the other: scatter's gradient for `src` gathers the
output gradient at the written places, and gather's gradient scatter-adds into zeros. `index` may be smaller than
`src` on every axis and smaller than `a` on every axis but `dim` (only its leading part is used, as in PyTorch);
its ids must lie in [0, a.shape[dim]) (no negative ids, as in PyTorch). When an id repeats in `scatter`, which
write wins is unspecified (as in PyTorch); `src`'s gradient still flows to every repeat (PyTorch's formula too).
"""
from __future__ import annotations

from tinytensor import backend
from tinytensor.autograd import Function
from tinytensor.ops import shape as shape_ops  # imports this module's checks first; its functions run later
from tinytensor.ops._util import lift
from tinytensor.tensor import Tensor


# ---- checks shared with gather ------------------------------------------------------------------------------------
def as_index_array(op: str, a: Tensor, index):
    """`index` (a Tensor, an array or a list) as an integer array on `a`'s device; TypeError names a float index."""
    index = index.data if isinstance(index, Tensor) else index
    if isinstance(index, (list, tuple)):
        index = a.xp.asarray(index, dtype=backend.int64)
    backend.array_module(a.data, index, op=op)  # RuntimeError naming both devices if they differ
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: index must hold integers, got dtype {index.dtype}")
    return index


def check_index_range(op: str, xp, index, size: int, dim: int) -> None:
    """Every id in [0, size): IndexError naming the first bad one on the CPU; on a GPU the check is read with the
    next transfer to the host (`backend.check_later`), so it costs no synchronisation of its own."""
    if index.size == 0:
        return
    if xp is not backend.module_for("cpu"):
        backend.check_later((index.min() < 0) | (index.max() >= size),
                            IndexError(f"{op}: an index is out of range for dimension {dim} with size {size} "
                                       "(detected on the GPU, after the op ran)"))
        return
    bad = (index < 0) | (index >= size)
    if bad.any():
        raise IndexError(f"{op}: index {int(index[bad][0])} is out of range for dimension {dim} with size {size}")


def check_along_axis_shapes(op: str, shape: tuple, dim: int, index, src_shape: tuple | None = None) -> int:
    """PyTorch's shape rules for gather/scatter: index has a's number of axes, fits inside a on every axis but
    `dim`, and inside src on every axis. Returns dim as a non-negative axis."""
    if not shape:
        raise ValueError(f"{op}: the input is 0-d; it has no dimension to index along")
    if index.ndim != len(shape):
        raise ValueError(f"{op}: index has {index.ndim} dims but the input shape {shape} has {len(shape)}")
    axis = dim % len(shape)
    for i, (n, m) in enumerate(zip(index.shape, shape)):
        if i != axis and n > m:
            raise ValueError(f"{op}: index shape {index.shape} is larger than the input shape {shape} on dimension "
                             f"{i} (only dimension {axis}, the indexed one, may be larger)")
    if src_shape is not None and (len(src_shape) != index.ndim or any(n > m for n, m in zip(index.shape, src_shape))):
        raise ValueError(f"{op}: index shape {index.shape} must fit inside the src shape {src_shape} on every "
                         f"dimension")
    return axis


def positions_along(xp, index, axis: int) -> tuple:
    """The full coordinates index selects: an open grid over index.shape with `index` itself on `axis`.
    a[positions_along(xp, index, axis)] is take_along_axis; writing there is scatter."""
    grid = [xp.arange(n).reshape([n if i == k else 1 for i in range(index.ndim)]) for k, n in enumerate(index.shape)]
    grid[axis] = index
    return tuple(grid)


# ---- index_select -------------------------------------------------------------------------------------------------
class IndexSelect(Function):
    """out = a.take(index, axis); backward adds each output slice back into the input slice it came from."""

    def forward(self, a, index=None, axis=0):
        self.index, self.axis, self.input_shape = index, axis, a.shape
        return self.xp.take(a, index, axis=axis)

    def backward(self, grad):  # repeated ids accumulate
        return shape_ops.scatter_add(self.xp, grad, (slice(None),) * self.axis + (self.index,), self.input_shape)


def index_select(input: Tensor, dim: int, index) -> Tensor:  # noqa: A002 - PyTorch's name
    """torch.index_select: the entries of `input` at `index` (1-d, or 0-d as one entry) along `dim`; the result
    keeps `input`'s number of axes. index_select(x, 0, ids) is x[ids] for a 1-d integer `ids`."""
    index = as_index_array("index_select", input, index)
    if index.ndim > 1:
        raise ValueError(f"index_select: index must be 0-d or 1-d, got shape {index.shape}")
    if input.ndim == 0:
        raise ValueError("index_select: the input is 0-d; it has no dimension to select along")
    axis = dim % input.ndim
    check_index_range("index_select", input.xp, index, input.shape[axis], axis)
    return IndexSelect.apply(input, index=index.reshape(-1), axis=axis)


# ---- scatter and scatter_add ---------------------------------------------------------------------------------------
class Scatter(Function):
    """out = a with src's leading index.shape block written (or, accumulate=True, added) at the index positions.

    Backward: a's gradient is the output's, minus the overwritten places for scatter (their old values left no
    trace); src's is the output gradient gathered at the places it went to, put into src's shape."""

    def forward(self, a, src, index=None, axis=0, accumulate=False):
        xp = self.xp
        self.positions, self.accumulate = positions_along(xp, index, axis), accumulate
        self.src_shape, self.block = src.shape, tuple(slice(0, n) for n in index.shape)
        out = a.copy()
        if accumulate:
            xp.add.at(out, self.positions, src[self.block])
        else:
            out[self.positions] = src[self.block]
        return out

    def backward(self, grad):
        grad_a = grad_src = None
        if self.needs_input_grad[0]:
            grad_a = grad if self.accumulate else grad * self._kept(grad)
        if self.needs_input_grad[1]:
            grad_src = shape_ops.scatter_add(self.xp, grad[self.positions], self.block, self.src_shape)
        return grad_a, grad_src

    def _kept(self, grad):
        """1 where the input survived, 0 where scatter overwrote it (a constant, so it also serves create_graph)."""
        kept = self.xp.ones(grad.shape, dtype=grad.dtype)
        kept[self.positions] = 0
        return kept


def _scatter(op: str, input: Tensor, dim: int, index, src, accumulate: bool) -> Tensor:  # noqa: A002
    index = as_index_array(op, input, index)
    if isinstance(src, Tensor):
        if src.dtype != input.dtype:
            raise TypeError(f"{op}: src has dtype {src.dtype} but the input has {input.dtype}; they must match, as "
                            f"in PyTorch (convert src with .to({input.dtype}))")
        backend.array_module(input.data, src.data, op=op)
    else:  # a Python number: PyTorch's `value` form, the same value at every index position
        src = Tensor._wrap(input.xp.broadcast_to(lift(src, input).data.astype(input.dtype), index.shape))
    axis = check_along_axis_shapes(op, input.shape, dim, index, src.shape)
    check_index_range(op, input.xp, index, input.shape[axis], axis)
    return Scatter.apply(input, src, index=index, axis=axis, accumulate=accumulate)


def scatter(input: Tensor, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:  # noqa: A002
    """torch.scatter: a copy of `input` with `src[i][j][k]` written at `[index[i][j][k]][j][k]` (for dim 0).
    `src` may be a tensor of `input`'s dtype or a number (PyTorch's `value`, also accepted by keyword)."""
    if reduce is not None:
        raise NotImplementedError("scatter: reduce= is not supported; use scatter_add for 'add'")
    if (src is None) == (value is None):
        raise TypeError("scatter: give exactly one of src (a tensor or a number) and value")
    return _scatter("scatter", input, dim, index, value if src is None else src, accumulate=False)


def scatter_add(input: Tensor, dim: int, index, src: Tensor) -> Tensor:  # noqa: A002 - PyTorch's names
    """torch.scatter_add: a copy of `input` with `src[i][j][k]` added at `[index[i][j][k]][j][k]` (for dim 0);
    every repeat of an id adds its value."""
    return _scatter("scatter_add", input, dim, index, src, accumulate=True)
