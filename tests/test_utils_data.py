"""tinytensor.utils.data behaves as torch.utils.data: datasets index and count, a DataLoader visits every item once
per epoch in batches (a new order each epoch when shuffling, the same order again from the same seed), collates
tensors, numbers, arrays, tuples and dicts, and random_split partitions a dataset by counts or fractions."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinytensor as torch
import tinytensor.nn as nn
import tinytensor.nn.functional as F
from tinytensor.utils.data import DataLoader, Dataset, TensorDataset, default_collate, random_split


def numbered(n: int) -> TensorDataset:
    return TensorDataset(torch.arange(n).float().view(n, 1) * 10, torch.arange(n))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 30), batch_size=st.integers(1, 8), shuffle=st.booleans(), drop_last=st.booleans())
def test_an_epoch_visits_every_item_once_in_batches_of_the_asked_size(n, batch_size, shuffle, drop_last):
    loader = DataLoader(numbered(n), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader)
    seen = [i for _, ids in batches for i in ids.tolist()]
    full = n - n % batch_size if drop_last else n
    assert len(seen) == full and len(set(seen)) == full
    assert all(len(ids) == batch_size for _, ids in batches[:-1])
    for xb, ids in batches:
        assert xb.shape == (len(ids), 1) and xb.view(-1).tolist() == [10.0 * i for i in ids.tolist()]
    if not shuffle:
        assert seen == list(range(full))


def test_shuffling_draws_a_new_order_each_epoch_and_the_same_orders_from_the_same_seed():
    def epochs(seed):
        loader = DataLoader(numbered(20), batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [[i for _, ids in loader for i in ids.tolist()] for _ in range(2)]

    first, second = epochs(3)
    assert first != second and sorted(first) == list(range(20))
    assert epochs(3) == [first, second] and epochs(4) != [first, second]
    torch.manual_seed(0)
    shared = [ids.tolist() for _, ids in DataLoader(numbered(8), batch_size=8, shuffle=True)]
    torch.manual_seed(0)
    assert shared == [ids.tolist() for _, ids in DataLoader(numbered(8), batch_size=8, shuffle=True)]


def test_default_collate_stacks_tensors_arrays_numbers_tuples_and_dicts():
    items = [{"x": np.full(2, i, dtype=np.float32), "y": i, "name": f"n{i}", "pair": (torch.tensor(i), 0.5)}
             for i in range(3)]
    batch = default_collate(items)
    assert batch["x"].shape == (3, 2) and batch["y"].tolist() == [0, 1, 2] and batch["name"] == ["n0", "n1", "n2"]
    assert batch["pair"][0].tolist() == [0, 1, 2] and batch["pair"][1].tolist() == [0.5, 0.5, 0.5]
    loader = DataLoader(numbered(5), batch_size=2, collate_fn=lambda items: len(items))
    assert list(loader) == [2, 2, 1]
    assert [item[1].item() for item in DataLoader(numbered(3), batch_size=None)] == [0, 1, 2]


def test_a_dataset_of_ones_own_and_samplers():
    class Squares(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.tensor(float(i * i)), i

    loader = DataLoader(Squares(), batch_size=4, sampler=[5, 0, 2])
    (values, ids), = list(loader)
    assert values.tolist() == [25.0, 0.0, 4.0] and ids.tolist() == [5, 0, 2] and len(loader) == 1
    assert [ids.tolist() for _, ids in DataLoader(Squares(), batch_sampler=[[1, 2], [3]])] == [[1, 2], [3]]


def test_random_split_partitions_by_counts_or_fractions():
    parts = random_split(numbered(10), [0.7, 0.3], generator=torch.Generator().manual_seed(1))
    assert [len(p) for p in parts] == [7, 3]
    ids = sorted(p[i][1].item() for p in parts for i in range(len(p)))
    assert ids == list(range(10))
    assert [len(p) for p in random_split(numbered(10), [0.34, 0.33, 0.33])] == [4, 3, 3]
    with pytest.raises(ValueError, match="sum to the dataset's length 10"):
        random_split(numbered(10), [3, 3])


def test_mistakes_name_what_to_fix():
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(torch.zeros(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(numbered(3), batch_size=0)
    with pytest.raises(ValueError, match="sampler or shuffle"):
        DataLoader(numbered(3), sampler=[0], shuffle=True)


def test_the_nn_tutorial_loop_with_tensor_dataset_and_data_loader_learns():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x[:, 0] + x[:, 1] > 0).long()
    train_ds, valid_ds = TensorDataset(x[:200], y[:200]), TensorDataset(x[200:], y[200:])
    train_dl = DataLoader(train_ds, batch_size=32, shuffle=True)
    valid_dl = DataLoader(valid_ds, batch_size=64)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def valid_loss():
        model.eval()
        with torch.no_grad():
            return sum(F.cross_entropy(model(xb), yb, reduction="sum").item() for xb, yb in valid_dl) / len(valid_ds)

    before = valid_loss()
    for _ in range(10):
        model.train()
        for xb, yb in train_dl:
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    assert valid_loss() < before / 2
