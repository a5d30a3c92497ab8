"""Datasets and batches, as `torch.utils.data`: `Dataset`, `TensorDataset`, `Subset`, `random_split`, the samplers
(`SequentialSampler`, `RandomSampler`, `BatchSampler`) and `DataLoader`.

    train = TensorDataset(x, y)                       # x [N, ...], y [N]: train[i] is (x[i], y[i])
    for xb, yb in DataLoader(train, batch_size=64, shuffle=True):
        loss = F.cross_entropy(model(xb), yb)

A `DataLoader` draws a fresh order every epoch (from `generator=` if given, else the shared CPU generator, so
`tt.manual_seed` makes it repeatable) and stacks the items of a batch with `default_collate`. It loads in the
calling process: `num_workers` and `pin_memory` are accepted for PyTorch's signature and change nothing.
"""
from tinytensor.utils.data.dataloader import DataLoader, default_collate
from tinytensor.utils.data.dataset import Dataset, Subset, TensorDataset, random_split
from tinytensor.utils.data.sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["BatchSampler", "DataLoader", "Dataset", "RandomSampler", "SequentialSampler", "Subset", "TensorDataset",
           "default_collate", "random_split"]
