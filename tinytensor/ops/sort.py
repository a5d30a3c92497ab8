"""Ordering: sort, argsort and topk, with PyTorch's arguments and (values, indices) results; the statistics read off
an order (median, quantile, cummax) and searchsorted/bucketize.

The indices come from the backend's stable argsort and carry no gradient; the values are `gather`ed with them, so
their backward is gather's (each value's gradient goes back to the element it came from).
"""
from __future__ import annotations

from tinytensor import backend
from tinytensor.ops._util import dim_index
from tinytensor.ops.reduce import ValuesIndices
from tinytensor.ops.shape import gather, stack
from tinytensor.tensor import Tensor


def _order_keys(array, descending: bool):
    """Keys whose ascending order is the wanted order (descending: negated; bools flipped)."""
    if not descending:
        return array
    return ~array if array.dtype == backend.bool_ else -array


def argsort(a: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """Indices that sort `a` along `dim` (int64). Always stable: equal elements keep their order."""
    return Tensor._wrap(a.xp.argsort(_order_keys(a.data, descending), axis=dim, kind="stable").astype(backend.int64))


def sort(a: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> ValuesIndices:
    """(sorted values, their indices in `a`) along `dim`, as torch.sort."""
    indices = argsort(a, dim, descending)
    return ValuesIndices(gather(a, dim, indices), indices)


def topk(a: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:  # noqa: A002
    """The k largest (or smallest) elements along `dim` and their indices, best first, as torch.topk."""
    if not 0 <= k <= a.shape[dim]:
        raise IndexError(f"topk: k={k} is out of range for dimension {dim} of size {a.shape[dim]}")
    order = argsort(a, dim, descending=largest).data
    indices = Tensor._wrap(a.xp.take(order, a.xp.arange(k), axis=dim))
    return ValuesIndices(gather(a, dim, indices), indices)


def searchsorted(sorted_sequence: Tensor, values, *, right: bool = False, side: str | None = None) -> Tensor:
    """Where each of `values` would go in a sorted 1-D `sorted_sequence` to keep it sorted (int64): the first
    such place, or the last with right=True (side="right"), as torch.searchsorted; no gradient."""
    if sorted_sequence.ndim != 1:
        raise ValueError(f"searchsorted: expects a 1-D sorted_sequence, got shape {sorted_sequence.shape}")
    values = values if isinstance(values, Tensor) else Tensor(values, device=sorted_sequence.device)
    side = side or ("right" if right else "left")
    found = sorted_sequence.xp.searchsorted(sorted_sequence.data, values.data, side=side)
    return Tensor._wrap(found.astype(backend.int64))


def bucketize(input: Tensor, boundaries: Tensor, *, right: bool = False) -> Tensor:  # noqa: A002
    """The bucket of each input between sorted `boundaries`: i with boundaries[i−1] < x ≤ boundaries[i]
    (≤ and < with right=True), i.e. searchsorted with the arguments swapped."""
    return searchsorted(boundaries, input, side="left" if not right else "right")


def cummax(a: Tensor, dim: int) -> ValuesIndices:
    """(running maximum, index of the last element reaching it) along `dim`, as torch.cummax; the values'
    gradient goes to those elements."""
    xp, axis = a.xp, dim_index("cummax", dim, a.shape)
    moved = xp.moveaxis(a.data, axis, -1)
    reaches = moved >= xp.maximum.accumulate(moved, axis=-1)
    positions = xp.where(reaches, xp.arange(moved.shape[-1]), 0)
    indices = xp.moveaxis(xp.maximum.accumulate(positions, axis=-1), -1, axis).astype(backend.int64)
    return ValuesIndices(gather(a, axis, Tensor._wrap(indices)), Tensor._wrap(indices))


def median(a: Tensor, dim: int | None = None, keepdim: bool = False):
    """The lower median (for an even count, the smaller middle value, as PyTorch): over everything (a 0-d
    tensor), or along `dim` as (values, indices). Its gradient goes to the median element."""
    if dim is None:
        return median(a.reshape(-1), 0).values
    axis = dim_index("median", dim, a.shape)
    values, indices = sort(a, axis)
    middle = (a.shape[axis] - 1) // 2
    pick = (slice(None),) * axis + (slice(middle, middle + 1) if keepdim else middle,)
    return ValuesIndices(values[pick], indices[pick])


def quantile(a: Tensor, q, dim: int | None = None, keepdim: bool = False, *, interpolation: str = "linear") -> Tensor:
    """The q-th quantiles (q a number or a 1-D tensor in [0, 1]) along `dim` (None: of everything), linearly
    interpolated between the neighbouring sorted values as torch.quantile's default; differentiable in `a`."""
    if interpolation != "linear":
        raise NotImplementedError(f"quantile: only interpolation='linear' is supported, got {interpolation!r}")
    if dim is None:
        return quantile(a.reshape(-1), q, 0, keepdim=False)
    qs = [float(q)] if not isinstance(q, Tensor) or q.ndim == 0 else [float(v) for v in q.tolist()]
    if any(not 0 <= v <= 1 for v in qs):
        raise ValueError(f"quantile: q must lie in [0, 1], got {qs}")
    axis = dim_index("quantile", dim, a.shape)
    ordered = sort(a, axis).values
    results = []
    for v in qs:
        position = v * (a.shape[axis] - 1)
        low, frac = int(position), position - int(position)
        high = min(low + 1, a.shape[axis] - 1)
        take = [(slice(None),) * axis + (slice(i, i + 1),) for i in (low, high)]
        value = ordered[take[0]] * (1 - frac) + ordered[take[1]] * frac
        results.append(value if keepdim else value.squeeze(axis))
    if not isinstance(q, Tensor) or q.ndim == 0:
        return results[0]
    return stack(results, 0)
