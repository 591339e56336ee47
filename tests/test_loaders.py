"""bnbook.loaders: in-memory datasets and reproducible batch orders."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from bnbook.loaders import batch_indices, datasets_of, fast_loader, first, head, in_memory


class _Plain(Dataset):
    """A map-style dataset that is not a TensorDataset (decoded example by example)."""

    def __init__(self, n: int):
        self.X = torch.arange(n * 2, dtype=torch.float32).view(n, 2)
        self.y = torch.arange(n) % 3

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


def test_fast_loader_gives_the_batches_of_a_shuffled_dataloader_without_the_last_partial_batch():
    ds = TensorDataset(torch.randn(23, 2), torch.arange(23))
    fast = [yb.tolist() for _, yb in fast_loader(ds, 5, generator=torch.Generator().manual_seed(3))]
    plain = [
        yb.tolist()
        for _, yb in DataLoader(ds, 5, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(3))
    ]
    assert fast == plain and len(fast) == 4
    in_order = [yb.tolist() for _, yb in fast_loader(ds, 10)]
    assert in_order == [list(range(10)), list(range(10, 20)), [20, 21, 22]]  # unshuffled keeps the tail


def test_in_memory_first_and_head():
    plain = _Plain(7)
    mem = in_memory(plain)
    assert (
        isinstance(mem, TensorDataset) and torch.equal(mem.tensors[0], plain.X) and torch.equal(mem.tensors[1], plain.y)
    )
    assert in_memory(mem) is mem
    X, y = first(plain, 3)
    assert torch.equal(X, plain.X[:3]) and y.tolist() == [0, 1, 2]
    assert isinstance(head(mem, 2), TensorDataset) and len(head(mem, 2)) == 2
    assert isinstance(head(plain, 2), Subset) and head(plain, None) is plain and head(plain, 99) is plain


def test_datasets_of_and_its_errors():
    ds = TensorDataset(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))
    train_ds, test_ds = datasets_of((DataLoader(ds), DataLoader(ds)))
    assert train_ds is ds and test_ds is ds
    with pytest.raises(TypeError, match="data must be"):
        datasets_of([1, 2, 3])
    with pytest.raises(TypeError, match="train_iter"):
        datasets_of(([1], [2]))
    empty = TensorDataset(torch.zeros(0, 1))
    with pytest.raises(ValueError, match="test_iter has an empty dataset"):
        datasets_of((DataLoader(ds), DataLoader(empty)))


def test_batch_indices_is_an_epoch_wise_permutation_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    idx = batch_indices(10, 3, steps=7, seed=1)  # 3 batches per epoch
    assert idx.shape == (7, 3)
    for epoch in range(2):
        rows = idx[3 * epoch : 3 * epoch + 3].flatten()
        assert rows.unique().numel() == 9  # no example twice within an epoch
    assert torch.equal(idx, batch_indices(10, 3, steps=7, seed=1))
    assert not torch.equal(idx, batch_indices(10, 3, steps=7, seed=2))
    assert torch.equal(state, torch.random.get_rng_state())
    with pytest.raises(ValueError, match="batch_size must be <= n"):
        batch_indices(3, 4, steps=1)
