"""In-memory datasets and fast, reproducible mini-batch orders (the lab bench of every chapter).

Introduced in chapter 1 ("Internal covariate shift"), whose experiments index the same few
thousand images hundreds of thousands of times, and used by chapter 2's explorer
(:func:`batch_indices`).  Everything here draws from a private ``torch.Generator``; the global
random state is never touched.

    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> ds = TensorDataset(torch.arange(10.0).view(10, 1), torch.arange(10))
    >>> X, y = first(ds, 4)
    >>> X.shape, y.tolist()
    (torch.Size([4, 1]), [0, 1, 2, 3])
    >>> batch_indices(10, 5, steps=3).shape
    torch.Size([3, 5])
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, Subset, TensorDataset

from bnbook._validate import check_positive_int

__all__ = ["in_memory", "head", "first", "fast_loader", "datasets_of", "batch_indices"]


def in_memory(ds: Dataset) -> TensorDataset:
    """``ds`` as a TensorDataset ``(X (N, C, H, W), y (N,))``, decoding every example once."""
    if isinstance(ds, TensorDataset):
        return ds
    return TensorDataset(*first(ds, len(ds)))


def datasets_of(data) -> tuple[Dataset, Dataset]:
    """``(train_dataset, test_dataset)`` of :class:`bnbook.data.Loaders` or a pair of DataLoaders."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError("data must be bnbook.data.Loaders or a pair (train_iter, test_iter) of DataLoaders")
    out = []
    for name, it in zip(("train_iter", "test_iter"), data):
        ds = getattr(it, "dataset", None)
        if ds is None:
            raise TypeError(f"{name} must be a torch DataLoader (with .dataset), got {type(it).__name__}")
        if len(ds) == 0:
            raise ValueError(f"{name} has an empty dataset")
        out.append(ds)
    return out[0], out[1]


def head(ds: Dataset, n: Optional[int]) -> Dataset:
    """The first ``n`` examples of ``ds`` (all if None), still a TensorDataset if ``ds`` is one."""
    if n is None or n >= len(ds):
        return ds
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[:n] for t in ds.tensors))
    return Subset(ds, range(n))


def fast_loader(ds: Dataset, batch_size: int, *, generator: Optional[torch.Generator] = None) -> DataLoader:
    """A DataLoader: shuffled with ``generator`` and without the last partial batch if given, else in order.

    A TensorDataset is indexed a whole batch at a time, which gives the same batches as
    ``DataLoader(ds, batch_size, shuffle=True, generator=generator, drop_last=True)`` several
    times faster than collating examples one by one.
    """
    shuffle = generator is not None
    if isinstance(ds, TensorDataset):
        sampler = RandomSampler(ds, generator=generator) if shuffle else SequentialSampler(ds)
        return DataLoader(
            ds, sampler=BatchSampler(sampler, batch_size, drop_last=shuffle), batch_size=None, generator=generator
        )
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=shuffle)


def first(ds: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples of ``ds`` as ``(X (n, ...), y (n,))``."""
    Xs, ys = zip(*fast_loader(head(ds, n), 1000))
    return torch.cat(Xs), torch.cat(ys)


def batch_indices(n: int, batch_size: int, steps: int, *, seed: int = 0) -> torch.Tensor:
    """Example indices of ``steps`` mini-batches, shape (steps, batch_size).

    Like a ``DataLoader(shuffle=True, drop_last=True)`` over ``n`` examples run for as many
    epochs as needed: a fresh random permutation every epoch, no repeats inside a batch.
    Uses a private ``torch.Generator(seed)``; the global RNG is not touched.
    """
    n = check_positive_int("n", n)
    batch_size = check_positive_int("batch_size", batch_size)
    steps = check_positive_int("steps", steps)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= n = {n} (the number of examples), got {batch_size}")
    gen = torch.Generator().manual_seed(check_positive_int("seed", seed, minimum=0))
    per_epoch = n // batch_size
    epochs = math.ceil(steps / per_epoch)
    perms = [torch.randperm(n, generator=gen)[: per_epoch * batch_size] for _ in range(epochs)]
    return torch.cat(perms).view(-1, batch_size)[:steps]  # (steps, batch_size)
