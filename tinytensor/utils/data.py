"""Datasets and batches, as `torch.utils.data`: `Dataset`, `TensorDataset`, `Subset`, `random_split`, `DataLoader`.

    train = TensorDataset(x, y)                       # x [N, ...], y [N]: train[i] is (x[i], y[i])
    for xb, yb in DataLoader(train, batch_size=64, shuffle=True):
        loss = F.cross_entropy(model(xb), yb)

A `DataLoader` draws a fresh order every epoch (from `generator=` if given, else the shared CPU generator, so
`tt.manual_seed` makes it repeatable) and stacks the items of a batch with `default_collate`. It loads in the
calling process: `num_workers` and `pin_memory` are accepted for PyTorch's signature and change nothing.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tinytensor.ops import creation, shape
from tinytensor.tensor import Tensor


class Dataset:
    """Anything with `__getitem__(i)` and `__len__()`: subclass it (or just write those two methods)."""

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
    """Item i is (t[i] for t in tensors); every tensor must have the same first dimension."""

    def __init__(self, *tensors: Tensor) -> None:
        sizes = {t.shape[0] if t.ndim else None for t in tensors}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(f"TensorDataset: every tensor needs the same first dimension, got shapes "
                             f"{[t.shape for t in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The items of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset, lengths: Sequence, generator=None) -> list[Subset]:
    """Split into non-overlapping random subsets of the given lengths, or of fractions summing to 1 (the items
    left over by rounding down go one each to the first subsets, as PyTorch does)."""
    total = len(dataset)
    if all(isinstance(n, float) for n in lengths) and math.isclose(sum(lengths), 1.0):
        counts = [math.floor(total * fraction) for fraction in lengths]
        for i in range(total - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != total or any(n < 0 for n in lengths):
        raise ValueError(f"random_split: lengths {list(lengths)} must be non-negative and sum to the dataset's "
                         f"length {total} (or be fractions summing to 1)")
    order = creation.randperm(total, generator=generator).tolist()
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    return [Subset(dataset, order[start:start + n]) for start, n in zip(starts, lengths)]


def default_collate(items: list):
    """Stack a batch: Tensors and arrays into one Tensor along a new first axis, numbers into a Tensor, and tuples,
    lists and dicts element by element; anything else (strings) is left as a list."""
    first = items[0]
    if isinstance(first, Tensor):
        return shape.stack(items)
    if hasattr(first, "shape") and hasattr(first, "dtype"):  # NumPy/CuPy arrays and scalars
        return shape.stack([Tensor(item) for item in items])
    if isinstance(first, (bool, int, float)):
        return creation.tensor(items)
    if isinstance(first, dict):
        return {key: default_collate([item[key] for item in items]) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(default_collate(list(column)) for column in zip(*items))
    return items


class DataLoader:
    """Batches of `batch_size` items of `dataset`, shuffled each epoch when `shuffle`, the last partial batch kept
    unless `drop_last`; `batch_size=None` yields the items one by one, uncollated."""

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool = False, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Callable | None = None,
                 pin_memory: bool = False, drop_last: bool = False, generator=None, **_ignored: Any) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer or None, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: give sampler or shuffle=True, not both")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.collate_fn = collate_fn or default_collate
        self.num_workers, self.pin_memory = num_workers, pin_memory

    def _order(self) -> list[int]:
        if self.sampler is not None:
            return list(self.sampler)
        if self.shuffle:
            return creation.randperm(len(self.dataset), generator=self.generator).tolist()
        return list(range(len(self.dataset)))

    def _batches(self) -> Iterator[list[int]]:
        if self.batch_sampler is not None:
            yield from self.batch_sampler
            return
        order = self._order()
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def __iter__(self):
        if self.batch_size is None and self.batch_sampler is None:
            yield from (self.dataset[i] for i in self._order())
            return
        for indices in self._batches():
            yield self.collate_fn([self.dataset[i] for i in indices])

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        count = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return count
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)


__all__ = ["DataLoader", "Dataset", "Subset", "TensorDataset", "default_collate", "random_split"]
