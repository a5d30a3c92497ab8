"""Datasets, as torch.utils.data.dataset: `Dataset`, `TensorDataset`, `Subset` and `random_split`."""
from __future__ import annotations

import math
from collections.abc import Sequence

from tinytensor.ops import creation
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
