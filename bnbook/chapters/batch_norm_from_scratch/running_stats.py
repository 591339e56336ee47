"""Running statistics and batch-vs-population normalization, as pure functions of tensors.

Part of chapter 2, "Batch normalization from scratch" (``notebooks/02_batch_norm_from_scratch.ipynb``),
checked against ``torch.nn.BatchNorm1d`` in ``tests/chapters/test_batch_norm_from_scratch.py``::

    >>> import torch
    >>> from bnbook.loaders import batch_indices
    >>> x = torch.randn(64, 3) * 2 + 5                     # (N, D)
    >>> idx = batch_indices(64, 8, steps=20)                 # (20, 8)
    >>> layer = make_layer(3, momentum=0.1, impl="torch")
    >>> means, vars_ = track_running_stats(layer, x, idx)    # (21, 3) each, row 0 = initial
    >>> means.shape
    torch.Size([21, 3])
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from bnbook._impl import functional_module, layers_module
from bnbook._validate import check_eps, check_momentum, check_positive_int
from bnbook.chapters.batch_norm_from_scratch.activations import check_2d

__all__ = [
    "make_layer",
    "track_running_stats",
    "running_average",
    "normalize_in_batches",
    "normalize_with",
    "batch_size_one_error",
]


def make_layer(
    num_features: int, momentum: Optional[float] = 0.1, eps: float = 1e-5, *, impl: str = "bnbook"
) -> nn.Module:
    """A fresh ``BatchNorm1d(num_features, eps, momentum)`` from :mod:`bnbook.layers` or ``torch.nn``."""
    return layers_module(impl).BatchNorm1d(num_features, eps=eps, momentum=momentum)


def track_running_stats(layer: nn.Module, x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``layer`` in training mode on the batches ``x[idx[t]]``; record its running statistics.

    Parameters
    ----------
    layer : nn.Module
        A ``BatchNorm1d`` (``torch.nn`` or :mod:`bnbook.layers`); its buffers are updated.
    x : Tensor, shape (N, D)
    idx : LongTensor, shape (S, B)
        From :func:`batch_indices`.

    Returns
    -------
    means, variances : Tensor, shape (S + 1, D)
        ``layer.running_mean`` / ``running_var`` before the first step (row 0) and after
        every step.  Batch size 1 raises PyTorch's ``ValueError`` from the layer.
    """
    x = check_2d("x", x)
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
        raise ValueError(f"idx must be a LongTensor of shape (S, B), got {getattr(idx, 'shape', type(idx).__name__)}")
    means = [layer.running_mean.detach().clone()]
    variances = [layer.running_var.detach().clone()]
    layer.train()
    with torch.no_grad():
        for rows in idx:
            layer(x[rows])  # (B, D) -> updates the buffers in place
            means.append(layer.running_mean.clone())
            variances.append(layer.running_var.clone())
    return torch.stack(means), torch.stack(variances)


def running_average(batch_stats: torch.Tensor, momentum: Optional[float], initial) -> torch.Tensor:
    """PyTorch's running-average rule applied to a sequence of per-batch statistics.

    ``r_t = (1 - momentum) * r_{t-1} + momentum * b_t`` (momentum weights the NEW value);
    ``momentum=None`` is the cumulative average, factor ``1 / t``.

    Parameters
    ----------
    batch_stats : Tensor, shape (S, D)
        ``b_1 .. b_S``: batch means, or *unbiased* batch variances for ``running_var``.
    momentum : float in [0, 1] or None
    initial : float or Tensor, shape (D,)
        ``r_0`` (0 for the mean, 1 for the variance in a fresh layer).

    Returns
    -------
    Tensor, shape (S + 1, D), row 0 = ``initial``.
    """
    b = check_2d("batch_stats", batch_stats)
    momentum = check_momentum(momentum)
    r = torch.as_tensor(initial, dtype=b.dtype).expand(b.shape[1]).clone()
    out = [r.clone()]
    for t in range(b.shape[0]):
        f = 1.0 / (t + 1) if momentum is None else momentum
        r = (1.0 - f) * r + f * b[t]
        out.append(r)
    return torch.stack(out)


def normalize_in_batches(x: torch.Tensor, batch_size: int, eps: float = 1e-5) -> torch.Tensor:
    """Training-mode BN output (weight 1, bias 0) of ``x`` cut into consecutive batches.

    Batch ``j`` (rows ``j*B .. j*B + B - 1``) is normalized with its own mean and *biased*
    variance, exactly what ``BatchNorm1d`` in ``train()`` mode outputs for it
    (``tests/chapters/test_batch_norm_from_scratch.py`` compares with ``torch.nn.BatchNorm1d``).  Trailing rows
    that do not fill a batch are dropped.  All batches at once, as a (M/B, B, D) tensor:
    one ``torch.batch_norm`` call with M/B * D channels would be slower for small B.

    Returns
    -------
    Tensor, shape (M // B * B, D)
    """
    x = check_2d("x", x)
    batch_size = check_positive_int("batch_size", batch_size)
    eps = check_eps(eps)
    n, d = x.shape
    if batch_size > n:
        raise ValueError(f"batch_size must be <= {n} (rows of x), got {batch_size}")
    if batch_size == 1:
        raise ValueError(batch_size_one_error(d, impl="torch"))
    k = n // batch_size
    xb = x[: k * batch_size].reshape(k, batch_size, d)  # (k, B, D)
    var, mean = torch.var_mean(xb, dim=1, keepdim=True, correction=0)  # (k, 1, D) each, biased
    return ((xb - mean) / torch.sqrt(var + eps)).reshape(k * batch_size, d)  # (k*B, D)


def normalize_with(
    x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float = 1e-5, *, impl: str = "bnbook"
) -> torch.Tensor:
    """Eval-mode BN output (weight 1, bias 0): ``(x - mean) / sqrt(var + eps)``, shape (N, D)."""
    x = check_2d("x", x)
    eps = check_eps(eps)
    F = functional_module(impl)
    mean = torch.as_tensor(mean, dtype=x.dtype).expand(x.shape[1]).clone()
    var = torch.as_tensor(var, dtype=x.dtype).expand(x.shape[1]).clone()
    return F.batch_norm(x, mean, var, training=False, eps=eps)


def batch_size_one_error(num_features: int, *, impl: str = "bnbook") -> str:
    """The message a ``BatchNorm1d(num_features)`` raises for a (1, num_features) batch in training mode."""
    layer = make_layer(check_positive_int("num_features", num_features), impl=impl)
    try:
        with torch.no_grad():
            layer.train()(torch.zeros(1, num_features))
    except (ValueError, RuntimeError) as exc:
        return str(exc)
    raise AssertionError(
        f"{type(layer).__module__}.BatchNorm1d accepted a batch of one in training mode"
    )  # pragma: no cover
