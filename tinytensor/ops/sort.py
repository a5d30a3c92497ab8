"""Ordering: sort, argsort and topk, with PyTorch's arguments and (values, indices) results.

The indices come from the backend's stable argsort and carry no gradient; the values are `gather`ed with them, so
their backward is gather's (each value's gradient goes back to the element it came from).
"""
from __future__ import annotations

from tinytensor import backend
from tinytensor.ops.reduce import ValuesIndices
from tinytensor.ops.shape import gather
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
