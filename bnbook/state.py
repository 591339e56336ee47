"""Measure a network without changing it: save and restore its state, and the thread count.

Introduced in chapter 1 ("Internal covariate shift"), whose probes and loss-landscape
measurements run a network in training mode in the middle of its training.  A module may take
part in the snapshot with two methods, ``rng_snapshot() -> object`` and
``rng_restore(snapshot)`` (chapter 1's noisy batch norm saves its private noise generator
this way).

    >>> import torch
    >>> bn = torch.nn.BatchNorm1d(2)
    >>> with preserved(bn):
    ...     _ = bn.train()(torch.randn(8, 2) + 3)  # updates running_mean inside the block
    >>> bn.running_mean.tolist(), bn.training
    ([0.0, 0.0], True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Optional

import torch
from torch import nn

from bnbook._validate import check_positive_int

__all__ = ["check_module", "preserved", "num_threads"]


def check_module(net, name: str = "net") -> nn.Module:
    """Return ``net`` if it is an ``nn.Module``, else raise TypeError naming it."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {type(net).__name__}")
    return net


@contextlib.contextmanager
def preserved(net: nn.Module, params: bool = False) -> Iterator[None]:
    """Restore buffers (BN running statistics), train/eval flags, RNG snapshots (and parameters) on exit."""
    check_module(net)
    tensors = list(net.buffers()) + (list(net.parameters()) if params else [])
    saved = [t.detach().clone() for t in tensors]
    rng = [(m, m.rng_snapshot()) for m in net.modules() if hasattr(m, "rng_snapshot")]
    modes = {m: m.training for m in net.modules()}
    try:
        yield
    finally:
        with torch.no_grad():
            for t, s in zip(tensors, saved):
                t.copy_(s)
        for m, snapshot in rng:
            m.rng_restore(snapshot)
        for m, training in modes.items():
            m.training = training


@contextlib.contextmanager
def num_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``; restore the previous value after (None: as is)."""
    if n is None:
        yield
        return
    n = check_positive_int("num_threads", n)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
