"""Orders of the indices of a dataset, as torch.utils.data.sampler: `SequentialSampler`, `RandomSampler`,
`BatchSampler`."""
from __future__ import annotations

import math
from collections.abc import Iterator

from tinytensor.ops import creation


class SequentialSampler:
    """0, 1, …, len(data_source) − 1."""

    def __init__(self, data_source) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler:
    """A random order of the indices, or `num_samples` draws with replacement (drawn lazily, in chunks, so
    minGPT's `RandomSampler(data, replacement=True, num_samples=int(1e10))` costs nothing up front)."""

    CHUNK = 4096

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator=None) -> None:
        self.data_source, self.replacement, self.generator = data_source, replacement, generator
        self.num_samples = len(data_source) if num_samples is None else int(num_samples)
        if self.num_samples <= 0 or (not replacement and num_samples is not None):
            raise ValueError("RandomSampler: num_samples must be positive, and is only for replacement=True "
                             f"(got num_samples={num_samples}, replacement={replacement})")

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        if not self.replacement:
            yield from creation.randperm(n, generator=self.generator).tolist()
            return
        for start in range(0, self.num_samples, self.CHUNK):
            count = min(self.CHUNK, self.num_samples - start)
            yield from creation.randint(0, n, (count,), generator=self.generator).tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler:
    """Lists of `batch_size` indices from `sampler` (the last shorter one dropped if `drop_last`)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool) -> None:
        if batch_size < 1:
            raise ValueError(f"BatchSampler: batch_size must be a positive integer, got {batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)
