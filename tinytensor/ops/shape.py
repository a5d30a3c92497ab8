"""Shape and indexing ops: reshape, transpose, permute, movedim, squeeze, expand, cat, stack, split, unbind, pad,
indexing (select, narrow, flip, masked_select, nonzero), gather.

None of these change values, only where they sit, so each backward puts the gradient back where the value came
from: reshape back, transpose by the inverse permutation, scatter into zeros for indexing (accumulating when an
index repeats), split for cat.
"""
from __future__ import annotations

import operator

from tinytensor import backend
from tinytensor.autograd import Function, SliceGrad
from tinytensor.ops._util import check_broadcastable, dim_index, shape_arg
from tinytensor.ops.scatter import as_index_array, check_along_axis_shapes, check_index_range
from tinytensor.tensor import Tensor


class Reshape(Function):
    def forward(self, a, shape=()):
        self.input_shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot view shape {a.shape} ({a.size} elements) as {shape}") from None

    def backward(self, grad):
        return grad.reshape(self.input_shape)


class Permute(Function):
    def forward(self, a, dims=()):
        self.inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
        return a.transpose(dims)

    def backward(self, grad):
        return self.xp.transpose(grad, self.inverse)


class Expand(Function):
    """Broadcast to a bigger shape without copying; the engine's `sum_to` folds the gradient back."""

    def forward(self, a, shape=()):
        return self.xp.broadcast_to(a, shape)

    def backward(self, grad):
        return grad


def reshape(a: Tensor, *shape) -> Tensor:
    shape = shape_arg(shape)
    if shape == a.shape:
        return a
    return Reshape.apply(a, shape=shape)


def flatten(a: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if a.ndim == 0:
        return reshape(a, 1)
    start, end = start_dim % a.ndim, end_dim % a.ndim
    return reshape(a, *a.shape[:start], -1, *a.shape[end + 1:])


def unflatten(a: Tensor, dim: int, sizes) -> Tensor:
    """Split axis `dim` into `sizes` (one of them may be -1), the inverse of flatten: [B, 6] → [B, 2, 3]."""
    axis = dim_index("unflatten", dim, a.shape)
    sizes = shape_arg((sizes,))
    try:
        return reshape(a, *a.shape[:axis], *sizes, *a.shape[axis + 1:])
    except ValueError:
        raise ValueError(f"unflatten: sizes {sizes} do not fit dim {dim} of size {a.shape[axis]}") from None


def permute(a: Tensor, *dims) -> Tensor:
    dims = tuple(dim_index("permute", d, a.shape) for d in shape_arg(dims))
    if sorted(dims) != list(range(a.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {a.ndim} axes of shape {a.shape}")
    return Permute.apply(a, dims=dims)


def transpose(a: Tensor, dim0: int = -2, dim1: int = -1) -> Tensor:
    """Swap two axes (also under NumPy's name `swapaxes` and PyTorch's `swapdims`)."""
    dims = list(range(a.ndim))
    dim0, dim1 = dim_index("transpose", dim0, a.shape), dim_index("transpose", dim1, a.shape)
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(a, dims=tuple(dims))


swapaxes = swapdims = transpose


def movedim(a: Tensor, source, destination) -> Tensor:
    """Move the axes `source` (an int or a sequence) to the positions `destination`, keeping the others in order
    (torch.movedim, NumPy's moveaxis): a permutation."""
    sources, targets = _dims_arg("movedim", source, a.shape), _dims_arg("movedim", destination, a.shape)
    if len(sources) != len(targets):
        raise ValueError(f"movedim: source {source} and destination {destination} name different numbers of dims")
    order = [axis for axis in range(a.ndim) if axis not in sources]
    for target, axis in sorted(zip(targets, sources)):
        order.insert(target, axis)
    return permute(a, *order)


moveaxis = movedim


def _dims_arg(op: str, dims, shape: tuple) -> tuple:
    """An int or a sequence of dims as distinct axes of `shape`; errors name the op."""
    listed = dims if isinstance(dims, (tuple, list)) else (dims,)
    axes = tuple(dim_index(op, operator.index(d), shape) for d in listed)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dims {dims} name the same axis twice for shape {shape}")
    return axes


def unsqueeze(a: Tensor, dim: int) -> Tensor:
    dim = dim % (a.ndim + 1)
    return reshape(a, *a.shape[:dim], 1, *a.shape[dim:])


def squeeze(a: Tensor, dim=None) -> Tensor:
    """Drop size-1 axes (all of them, or only `dim` if it has size 1, as PyTorch does)."""
    if dim is None:
        return reshape(a, *[n for n in a.shape if n != 1])
    dims = {d % a.ndim for d in (dim if isinstance(dim, tuple) else (dim,))}
    return reshape(a, *[n for i, n in enumerate(a.shape) if not (i in dims and n == 1)])


def expand(a: Tensor, *shape) -> Tensor:
    """Broadcast to `shape`; -1 keeps that axis's size (PyTorch's expand)."""
    shape = shape_arg(shape)
    lead = len(shape) - a.ndim
    shape = tuple(a.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    try:
        return Expand.apply(a, shape=shape)
    except ValueError:
        raise ValueError(f"expand: shape {a.shape} cannot be expanded to {shape}") from None


# ---- joining and splitting ----------------------------------------------------------------------------------------
class Concatenate(Function):
    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.boundaries = []
        position = 0
        for array in arrays[:-1]:
            position += array.shape[axis]
            self.boundaries.append(position)
        return self.xp.concatenate(arrays, axis=axis)

    def backward(self, grad):
        return tuple(self.xp.split(grad, self.boundaries, axis=self.axis))


def cat(tensors, dim: int = 0, *, axis: int | None = None) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = list(tensors)
    axis = dim if axis is None else axis
    first = tensors[0].shape
    for other in tensors[1:]:
        if len(other.shape) != len(first) or any(
            m != n for i, (m, n) in enumerate(zip(first, other.shape)) if i != axis % len(first)
        ):
            raise ValueError(f"cat: shapes {first} and {other.shape} differ outside axis {axis}")
    return Concatenate.apply(*tensors, axis=axis % len(first))


def stack(tensors, dim: int = 0, *, axis: int | None = None) -> Tensor:
    """Join tensors along a new axis."""
    tensors = list(tensors)
    axis = dim if axis is None else axis
    for other in tensors[1:]:
        if other.shape != tensors[0].shape:
            raise ValueError(f"stack: shapes {tensors[0].shape} and {other.shape} differ; stack needs equal shapes")
    return cat([unsqueeze(t, axis) for t in tensors], axis)


def split(a: Tensor, split_size, dim: int = 0) -> list[Tensor]:
    """Pieces of `split_size` along `dim` (the last may be shorter), or of the listed sizes (PyTorch's split)."""
    length = a.shape[dim]
    sizes = list(split_size) if isinstance(split_size, (list, tuple)) else None
    if sizes is None:
        sizes = [min(split_size, length - start) for start in range(0, length, split_size)]
    if sum(sizes) != length:
        raise ValueError(f"split: sizes {sizes} do not add up to {length}, the length of axis {dim}")
    pieces, start = [], 0
    prefix = (slice(None),) * (dim % a.ndim)
    for size in sizes:
        pieces.append(getitem(a, prefix + (slice(start, start + size),)))
        start += size
    return pieces


def chunk(a: Tensor, chunks: int, dim: int = 0) -> list[Tensor]:
    """`chunks` pieces of equal size along `dim` (the last may be smaller), as in PyTorch."""
    length = a.shape[dim]
    return split(a, -(-length // chunks), dim)


def unbind(a: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along `dim`, each without that axis: unbind(x)[i] is x[i] (the inverse of stack)."""
    axis = dim_index("unbind", dim, a.shape)
    return tuple(getitem(a, (slice(None),) * axis + (i,)) for i in range(a.shape[axis]))


class Pad(Function):
    def forward(self, a, widths=(), value=0.0):
        self.slices = tuple(slice(before, before + n) for (before, _), n in zip(widths, a.shape))
        return self.xp.pad(a, widths, mode="constant", constant_values=value)

    def backward(self, grad):
        return grad[self.slices]


def pad(a: Tensor, pad: tuple, value: float = 0.0) -> Tensor:
    """Constant padding with PyTorch's spec: (left, right) of the last axis, then of the one before, …"""
    if len(pad) % 2 or len(pad) // 2 > a.ndim:
        raise ValueError(f"pad: {pad} must hold a (before, after) pair per padded axis of shape {a.shape}")
    widths = [(0, 0)] * a.ndim
    for i in range(len(pad) // 2):
        widths[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return Pad.apply(a, widths=tuple(widths), value=value)


# ---- indexing ----------------------------------------------------------------------------------------------------
def index_arrays(index, xp):
    """Turn Tensors and lists inside an index into `xp` arrays, so NumPy/CuPy indexing rules apply unchanged."""
    if isinstance(index, tuple):
        return tuple(index_arrays(i, xp) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return xp.asarray(index)
    return index


def _index_arrays_in(index) -> list:
    return [part for part in (index if isinstance(index, tuple) else (index,)) if hasattr(part, "dtype")]


def _has_integer_array(index) -> bool:
    return any(part.dtype != backend.bool_ for part in _index_arrays_in(index))


class GetItem(Function):
    """a[index] with slices, ints, None, Ellipsis, integer arrays and boolean masks (NumPy's rules)."""

    def forward(self, a, index=None):
        self.index, self.input_shape = index, a.shape
        return self.xp.asarray(a[index])  # NumPy gives a scalar, not a 0-d array, when every axis is indexed

    def backward(self, grad):
        if not isinstance(grad, Tensor) and not _index_arrays_in(self.index):  # ints and slices: each position once
            return SliceGrad(grad, self.index, self.input_shape)
        return scatter_add(self.xp, grad, self.index, self.input_shape)


def scatter_add(xp, values, index, shape: tuple):
    """zeros(shape) with `values` added at `index` (repeated indices accumulate): the backward of indexing, and of
    everything that picks elements (gather, embedding, nll_loss). On Tensors (create_graph) it is the op
    `ScatterAdd`, whose own backward is indexing again."""
    if isinstance(values, Tensor):
        return ScatterAdd.apply(values, index=index, shape=shape)
    out = xp.zeros(shape, dtype=values.dtype)
    if _has_integer_array(index):
        xp.add.at(out, index, values)
    else:
        out[index] = values
    return out


class ScatterAdd(Function):
    def forward(self, values, index=None, shape=()):
        self.index = index
        return scatter_add(self.xp, values, index, shape)

    def backward(self, grad):
        return grad[self.index]


def getitem(a: Tensor, index) -> Tensor:
    index = index_arrays(index, a.xp)
    backend.array_module(a.data, *_index_arrays_in(index), op="getitem")
    return GetItem.apply(a, index=index)


def select(a: Tensor, dim: int, index: int) -> Tensor:
    """a[..., index, ...] at axis `dim`, which disappears (torch.select); a negative index counts from the end."""
    axis = dim_index("select", dim, a.shape)
    index, size = operator.index(index), a.shape[axis]
    if not -size <= index < size:
        raise IndexError(f"select: index {index} is out of range for dim {dim} of size {size} (shape {a.shape})")
    return getitem(a, (slice(None),) * axis + (index,))


def narrow(a: Tensor, dim: int, start: int, length: int) -> Tensor:
    """a[..., start:start + length, ...] at axis `dim` (torch.narrow); unlike a slice it never shortens silently:
    the range must lie inside the axis. A negative start counts from the end."""
    axis = dim_index("narrow", dim, a.shape)
    start, length, size = operator.index(start), operator.index(length), a.shape[axis]
    if not -size <= start <= size:
        raise IndexError(f"narrow: start {start} is out of range for dim {dim} of size {size} (shape {a.shape})")
    start = start + size if start < 0 else start
    if length < 0 or start + length > size:
        raise IndexError(f"narrow: start {start} + length {length} does not fit dim {dim} of size {size} "
                         f"(shape {a.shape})")
    return getitem(a, (slice(None),) * axis + (slice(start, start + length),))


def flip(a: Tensor, *dims) -> Tensor:
    """Reverse the order of the elements along each of `dims` (torch.flip): indexing with reversed slices, whose
    backward reverses the gradient back. The result is a contiguous copy, as PyTorch's, so `.view` works on it."""
    axes = _dims_arg("flip", shape_arg(dims), a.shape)
    return contiguous(getitem(a, tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(a.ndim))))


def fliplr(a: Tensor) -> Tensor:
    """Reverse the columns (axis 1) of a tensor of at least 2 dims."""
    if a.ndim < 2:
        raise ValueError(f"fliplr: needs a tensor of at least 2 dims, got shape {a.shape}")
    return flip(a, 1)


def flipud(a: Tensor) -> Tensor:
    """Reverse the rows (axis 0) of a tensor of at least 1 dim."""
    if a.ndim < 1:
        raise ValueError(f"flipud: needs a tensor of at least 1 dim, got shape {a.shape}")
    return flip(a, 0)


def masked_select(a: Tensor, mask) -> Tensor:
    """The elements of `a` where the bool `mask` is True, as a 1-D tensor in row-major order (a and mask broadcast
    together first, as in PyTorch); the gradient goes back to the selected elements."""
    mask = mask if isinstance(mask, Tensor) else Tensor(mask, device=a.device)
    if mask.dtype != backend.bool_:
        raise TypeError(f"masked_select: mask must be a bool tensor, got dtype {mask.dtype}")
    check_broadcastable("masked_select", a, mask)
    shape = a.xp.broadcast_shapes(a.shape, mask.shape)
    a = a if a.shape == shape else expand(a, *shape)
    return getitem(a, mask.xp.broadcast_to(mask.data, shape))


def argwhere(a: Tensor) -> Tensor:
    """The index of every non-zero element, one row each: int64 [n, ndim] in row-major order (no gradient)."""
    return Tensor._wrap(a.xp.argwhere(a.data).astype(backend.int64, copy=False))


def nonzero(a: Tensor, *, as_tuple: bool = False):
    """argwhere(a), or with as_tuple=True one int64 vector of indices per axis (what indexing takes: a[nonzero(a,
    as_tuple=True)] are the non-zero values). A 0-d tensor counts as 1-D there, as in PyTorch."""
    if not as_tuple:
        return argwhere(a)
    data = a.data.reshape(1) if a.ndim == 0 else a.data
    return tuple(Tensor._wrap(ids.astype(backend.int64, copy=False)) for ids in a.xp.nonzero(data))


class Gather(Function):
    """out[..., j, ...] = a[..., index[..., j, ...], ...] along one axis (torch.gather)."""

    def forward(self, a, index=None, axis=0):
        self.index, self.axis, self.input_shape = index, axis, a.shape
        return self.xp.take_along_axis(a, index, axis=axis)

    def backward(self, grad):
        positions = _open_grid(self.xp, self.index.shape)
        positions[self.axis] = self.index
        return scatter_add(self.xp, grad, tuple(positions), self.input_shape)


def _open_grid(xp, shape: tuple) -> list:
    """NumPy's indices(shape, sparse=True), built from aranges: CuPy's `indices` has no `sparse` argument."""
    return [xp.arange(n).reshape([n if axis == i else 1 for i in range(len(shape))]) for axis, n in enumerate(shape)]


def gather(a: Tensor, dim: int, index) -> Tensor:
    """torch.gather: out[i][j][k] = a[index[i][j][k]][j][k] for dim 0 (likewise for the others). out has index's
    shape, which may be smaller than a's on the other axes (their leading part is read); ids lie in [0, a.shape[dim])
    (ops/scatter.py holds the checks, shared with scatter)."""
    index = as_index_array("gather", a, index)
    axis = check_along_axis_shapes("gather", a.shape, dim, index)
    check_index_range("gather", a.xp, index, a.shape[axis], axis)
    if any(n < m for i, (n, m) in enumerate(zip(index.shape, a.shape)) if i != axis):
        a = getitem(a, tuple(slice(None) if i == axis else slice(0, n) for i, n in enumerate(index.shape)))
    return Gather.apply(a, index=index, axis=axis)


def take_along_dim(input: Tensor, indices, dim: int | None = None) -> Tensor:  # noqa: A002 - PyTorch's name
    """torch.take_along_dim: `input`'s values at `indices` along `dim` (NumPy's take_along_axis), the other axes
    broadcast between the two; with dim=None, positions in the flattened input."""
    indices = indices if isinstance(indices, Tensor) else Tensor(indices, device=input.device)
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    axis = dim_index("take_along_dim", dim, input.shape)
    if indices.ndim != input.ndim:
        raise ValueError(f"take_along_dim: indices {indices.shape} need as many dimensions as input {input.shape}")
    try:
        common = [n if i == axis else max(n, m) for i, (n, m) in enumerate(zip(input.shape, indices.shape))]
        sized = [input.shape[i] if i == axis else n for i, n in enumerate(common)]
        ids = [indices.shape[i] if i == axis else n for i, n in enumerate(common)]
        return gather(expand(input, *sized), axis, expand(indices, *ids))
    except ValueError:
        raise ValueError(f"take_along_dim: input {input.shape} and indices {indices.shape} do not broadcast off "
                         f"dim {dim}") from None


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:  # noqa: A002
    """torch.diagonal: the elements input[..., i, i + offset] of the plane (dim1, dim2), as a last axis."""
    return _plane_diagonal(input, offset, dim1, dim2)


def _plane_diagonal(input: Tensor, offset: int, dim1: int, dim2: int) -> Tensor:  # noqa: A002
    first, second = dim_index("diagonal", dim1, input.shape), dim_index("diagonal", dim2, input.shape)
    if first == second:
        raise ValueError(f"diagonal: dim1 and dim2 name the same axis ({dim1}, {dim2}) of shape {input.shape}")
    rest = [axis for axis in range(input.ndim) if axis not in (first, second)]
    plane = permute(input, *rest, first, second)
    rows, cols = plane.shape[-2], plane.shape[-1]
    count = max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))
    start_row, start_col = max(0, -offset), max(0, offset)
    steps = input.xp.arange(count)
    return getitem(plane, (Ellipsis, steps + start_row, steps + start_col))


def diag(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002
    """torch.diag: a vector becomes the square matrix with it on the `diagonal`-th diagonal; a matrix gives that
    diagonal as a vector."""
    if input.ndim == 2:
        return _plane_diagonal(input, diagonal, 0, 1)
    if input.ndim != 1:
        raise ValueError(f"diag: expects a vector or a matrix, got shape {input.shape}")
    square = input.reshape(-1, 1) * input.xp.eye(input.shape[0], dtype=input.dtype)
    k = abs(diagonal)
    widths = (k, 0, 0, k) if diagonal >= 0 else (0, k, k, 0)  # F.pad order: last axis (left, right), then rows
    return pad(square, widths) if k else square


def trace(input: Tensor) -> Tensor:  # noqa: A002
    """The sum of a matrix's main diagonal."""
    if input.ndim != 2:
        raise ValueError(f"trace: expects a matrix, got shape {input.shape}")
    return diagonal(input).sum()


def meshgrid(*tensors, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids from 1-D tensors: with "ij" the i-th output varies along axis i; "xy" swaps the first two
    axes (NumPy's default). Differentiable in the inputs."""
    tensors = list(tensors[0]) if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else list(tensors)
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    if any(t.ndim != 1 for t in tensors):
        raise ValueError(f"meshgrid: expects 1-D tensors, got shapes {[t.shape for t in tensors]}")
    order = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        order[0], order[1] = 1, 0
    sizes = [tensors[order[axis]].shape[0] for axis in range(len(tensors))]
    grids = []
    for i, t in enumerate(tensors):
        axis = order.index(i)
        shape = [1] * len(tensors)
        shape[axis] = t.shape[0]
        grids.append(expand(t.reshape(*shape), *sizes))
    return tuple(grids)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=None, device: str = "cpu") -> Tensor:
    """[2, N] coordinates of the lower triangle of a row×col matrix (on and below diagonal `offset`)."""
    return _triangle_indices(backend.module_for(device).tril_indices(row, offset, col), dtype)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=None, device: str = "cpu") -> Tensor:
    """[2, N] coordinates of the upper triangle of a row×col matrix (on and above diagonal `offset`)."""
    return _triangle_indices(backend.module_for(device).triu_indices(row, offset, col), dtype)


def _triangle_indices(pair, dtype) -> Tensor:
    xp = backend.array_module(pair[0])
    return Tensor._wrap(xp.stack(pair).astype(backend.as_dtype(dtype or backend.int64)))


def cartesian_prod(*tensors: Tensor) -> Tensor:
    """Every combination of one element from each 1-D tensor, as rows [N, k] (itertools.product's order); one
    tensor is returned as it is."""
    if len(tensors) == 1:
        return tensors[0]
    return stack([grid.reshape(-1) for grid in meshgrid(*tensors, indexing="ij")], 1)


class Triangle(Function):
    """Keep the lower (tril) or upper (triu) triangle of the last two axes, zeroing the rest."""

    def forward(self, a, diagonal=0, lower=True):
        self.keep = (lambda x: self.xp.tril(x, diagonal)) if lower else (lambda x: self.xp.triu(x, diagonal))
        return self.keep(a)

    def backward(self, grad):
        return self.keep(grad)


def tril(a: Tensor, diagonal: int = 0) -> Tensor:
    return Triangle.apply(a, diagonal=diagonal, lower=True)


def triu(a: Tensor, diagonal: int = 0) -> Tensor:
    return Triangle.apply(a, diagonal=diagonal, lower=False)


# ---- views, rolls and repeats -------------------------------------------------------------------------------------
def view(a: Tensor, *shape) -> Tensor:
    """`reshape` that refuses to copy, as PyTorch's `view` does.

    A view is possible when the array's strides allow it: always for a contiguous tensor; for a transposed or
    sliced one only sometimes. Refusing (instead of silently copying) keeps code that runs here running on
    PyTorch, and says where a copy happens: write `.reshape(...)` or `.contiguous().view(...)` there.
    """
    shape = shape_arg(shape)
    array = a.data
    if not array.flags.c_contiguous and array.size:
        try:
            viewed = array.reshape(shape)
        except ValueError:
            viewed = None  # a wrong shape: `reshape` below names it
        if viewed is not None and not a.xp.may_share_memory(viewed, array):
            raise RuntimeError(f"view: a tensor of shape {a.shape} whose strides {array.strides} do not fit shape "
                               f"{shape} needs a copy; use .reshape(...) or .contiguous().view(...)")
    return reshape(a, *shape)


def contiguous(a: Tensor) -> Tensor:
    """The tensor itself when its array is C-contiguous, else a differentiable C-ordered copy."""
    return a if a.data.flags.c_contiguous else Contiguous.apply(a)


class Contiguous(Function):
    def forward(self, a):
        return self.xp.ascontiguousarray(a)

    def backward(self, grad):
        return grad


class Roll(Function):
    """Shift elements along axes, wrapping around; backward shifts the gradient back."""

    def forward(self, a, shifts=0, axes=None):
        self.shifts, self.axes = shifts, axes
        return self.xp.roll(a, shifts, axis=axes)

    def backward(self, grad):
        back = tuple(-s for s in self.shifts) if isinstance(self.shifts, tuple) else -self.shifts
        return self.xp.roll(grad, back, axis=self.axes)


def roll(a: Tensor, shifts, dims=None) -> Tensor:
    """torch.roll: shift by `shifts` along `dims` (an int or a tuple of both); dims=None rolls the flattened tensor."""
    shifts = tuple(shifts) if isinstance(shifts, (list, tuple)) else int(shifts)
    dims = tuple(dims) if isinstance(dims, (list, tuple)) else dims
    return Roll.apply(a, shifts=shifts, axes=dims)


class Repeat(Function):
    """Tile the tensor `sizes` times along each axis (torch.Tensor.repeat, NumPy's tile).

    Backward folds the gradient [r0·s0, r1·s1, …] into [r0, s0, r1, s1, …] and sums the repeat axes r·.
    """

    def forward(self, a, sizes=()):
        padded = (1,) * (len(sizes) - a.ndim) + a.shape
        self.input_shape, self.split_shape = a.shape, [n for pair in zip(sizes, padded) for n in pair]
        return self.xp.tile(a.reshape(padded), sizes)

    def backward(self, grad):
        repeat_axes = tuple(range(0, len(self.split_shape), 2))
        return grad.reshape(self.split_shape).sum(axis=repeat_axes).reshape(self.input_shape)


def repeat(a: Tensor, *sizes) -> Tensor:
    sizes = shape_arg(sizes)
    if len(sizes) < a.ndim:
        raise ValueError(f"repeat: {len(sizes)} repeat counts for a tensor of {a.ndim} dimensions; give at least "
                         f"one per dimension")
    return Repeat.apply(a, sizes=sizes)
