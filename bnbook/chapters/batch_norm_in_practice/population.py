"""Population statistics for batch norm after training ("precise BN", Wu & Johnson 2021).

Part of chapter 3, "Batch norm in practice" (``notebooks/03_batch_norm_in_practice.ipynb``),
section 4.  The running averages a BN layer keeps during training are an exponential moving
average (EMA) of batch statistics computed with *older* weights.  :func:`recompute_bn_stats`
replaces them, with the final weights fixed, by the exact mean and variance of each BN layer's
input over a pass of the data, merged across batches with Chan et al.'s (1979) pairwise formula
(no raw sum of squares).  ``torch.optim.swa_utils.update_bn`` does the same job differently: it
averages the per-batch means and unbiased variances, every batch with the same weight.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Optional

import torch
from torch import nn

from bnbook._validate import check_positive_int
from bnbook.chapters.batch_norm_in_practice.freeze import batch_norm_layers

__all__ = ["recompute_bn_stats", "ema_vs_recomputed"]


class _Moments:
    """Per-channel count, mean and sum of squared deviations M2, merged batch by batch (Chan et al.)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, x: torch.Tensor) -> None:
        dims = [0] + list(range(2, x.dim()))  # every axis but the channels
        x = x.detach().double()
        nb = x.numel() // x.shape[1]
        mb = x.mean(dims)  # (C,)
        m2b = ((x - mb.view(1, -1, *[1] * (x.dim() - 2))) ** 2).sum(dims)  # (C,)
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * nb / n
        self.m2 = self.m2 + m2b + delta**2 * self.n * nb / n
        self.n = n


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable, *, num_batches: Optional[int] = None) -> nn.Module:
    """Set every BN layer's running statistics to the exact statistics of its input over ``batches``.

    The model runs in training mode (each BN normalizes with its batch, as during training, so the
    later layers see what they saw in training) under ``torch.no_grad()``; parameters, momentum and
    the modules' train/eval flags are left as they were.  ``running_var`` gets the unbiased pooled
    variance, as PyTorch stores it.

    Parameters
    ----------
    model : nn.Module
        Holds at least one BN layer that tracks running statistics.
    batches : iterable of Tensor or of (X, ...) tuples
        E.g. a training DataLoader; only the first element of a tuple is fed to the model.
    num_batches : int, optional
        Use only this many batches.

    Returns
    -------
    nn.Module
        ``model``, with new ``running_mean`` / ``running_var`` (``num_batches_tracked`` += batches).

    Raises
    ------
    ValueError
        No BN layer with running statistics, or no batch in ``batches``.
    """
    bns = {n: m for n, m in batch_norm_layers(model).items() if getattr(m, "running_mean", None) is not None}
    if not bns:
        raise ValueError(f"model ({type(model).__name__}) has no batch norm layer with running statistics")
    if num_batches is not None:
        num_batches = check_positive_int("num_batches", num_batches)
    moments = {n: _Moments() for n in bns}
    handles = [m.register_forward_pre_hook(lambda mod, inp, n=n: moments[n].add(inp[0])) for n, m in bns.items()]
    modes = {m: m.training for m in model.modules()}
    saved = {n: (m.running_mean.clone(), m.running_var.clone()) for n, m in bns.items()}
    count = 0
    try:
        model.train()
        for batch in batches:
            if num_batches is not None and count >= num_batches:
                break
            X = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(X)
            count += 1
        if count == 0:
            raise ValueError("batches yielded no batch")
    except BaseException:
        for n, m in bns.items():  # the forward passes moved the EMA: put it back
            m.running_mean.copy_(saved[n][0])
            m.running_var.copy_(saved[n][1])
        raise
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    for n, m in bns.items():
        mom = moments[n]
        m.running_mean.copy_(mom.mean.to(m.running_mean.dtype))
        m.running_var.copy_((mom.m2 / max(mom.n - 1, 1)).to(m.running_var.dtype))
    return model


def ema_vs_recomputed(model: nn.Module, batches: Iterable, X_test: torch.Tensor, y_test: torch.Tensor) -> tuple:
    """Eval-mode test accuracy with the running (EMA) statistics, and after :func:`recompute_bn_stats`.

    ``batches`` (inputs only or ``(X, y)`` tuples) supply the statistics; they need no labels.
    ``model`` itself is not changed (a deep copy is recomputed).  Returns ``(acc_ema, acc_recomputed)``.
    """
    from bnbook.chapters.batch_norm_in_practice.mlp import accuracy

    acc_ema = accuracy(model, X_test, y_test)
    fresh = recompute_bn_stats(copy.deepcopy(model), batches)
    return acc_ema, accuracy(fresh, X_test, y_test)
