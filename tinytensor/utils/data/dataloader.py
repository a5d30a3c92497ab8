"""Batches, as torch.utils.data.dataloader: `DataLoader` and `default_collate`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tinytensor.ops import creation, shape
from tinytensor.tensor import Tensor
from tinytensor.utils.data.sampler import BatchSampler, RandomSampler, SequentialSampler


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

    def _sampler(self):
        """The order of one epoch: the given sampler, a fresh random one when shuffling, else 0 … N − 1."""
        if self.sampler is not None:
            return self.sampler
        if self.shuffle:
            return RandomSampler(self.dataset, generator=self.generator)
        return SequentialSampler(self.dataset)

    def _batch_sampler(self):
        return self.batch_sampler or BatchSampler(self._sampler(), self.batch_size, self.drop_last)

    def __iter__(self):
        if self.batch_size is None and self.batch_sampler is None:
            yield from (self.dataset[i] for i in self._sampler())
            return
        for indices in self._batch_sampler():
            yield self.collate_fn([self.dataset[i] for i in indices])

    def __len__(self) -> int:
        if self.batch_size is None and self.batch_sampler is None:
            return len(self._sampler())
        return len(self._batch_sampler())
