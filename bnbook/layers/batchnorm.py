"""Batch normalization layers (Ioffe & Szegedy 2015): ``BatchNorm1d``, ``BatchNorm2d``, ``BatchNorm3d``.

Introduced in chapter 2, "Batch normalization from scratch"
(``notebooks/02_batch_norm_from_scratch.ipynb``).  ``_BatchNorm`` is the base class that
other modules (e.g. a synchronized batch norm) subclass.
"""

from __future__ import annotations

from torch import Tensor

from bnbook import functional
from bnbook.layers._base import _check_channels, _check_dims, _NormBase

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


class _BatchNorm(_NormBase):
    """Batch normalization over the channel axis 1 of (N, C, *) inputs (Ioffe & Szegedy 2015).

    Training mode normalizes with the batch's mean and biased variance and, if
    ``track_running_stats``, updates the running averages (variance: unbiased estimate).
    Eval mode normalizes with the running averages, or with the batch's statistics when the
    layer keeps none.
    """

    def forward(self, input: Tensor) -> Tensor:
        _check_dims(input, self._accepted_dims)
        _check_channels(input, self.num_features)

        return self._normalize(input, self._count_batch())

    def _count_batch(self) -> float:
        """Count a training batch; return its weight in the running averages (0.0 if not updated)."""
        if not (self.training and self.track_running_stats):
            return 0.0
        # Counted before the functional call, exactly as PyTorch does.
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            # Cumulative moving average: the k-th batch gets weight 1/k, so the running
            # value is the plain mean of all batch statistics so far.
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _normalize(self, input: Tensor, factor: float) -> Tensor:
        """``functional.batch_norm`` with this layer's parameters, buffers and mode."""
        # Batch statistics in training, and in eval when there are no running ones.
        use_batch_stats = self.training or self.running_mean is None
        # Pass the buffers when they are read (eval) or updated (training and tracked).
        pass_buffers = not self.training or self.track_running_stats
        return functional.batch_norm(
            input,
            self.running_mean if pass_buffers else None,
            self.running_var if pass_buffers else None,
            self.weight,
            self.bias,
            training=use_batch_stats,
            momentum=factor,
            eps=self.eps,
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs; drop-in for ``torch.nn.BatchNorm1d``.

    Statistics per feature/channel, over N (and L).  Parameters as in ``_NormBase``:
    ``BatchNorm1d(num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True, device=None, dtype=None, *, bias=True)``.

    Examples
    --------
    >>> import torch
    >>> bn = BatchNorm1d(4)
    >>> y = bn(torch.randn(32, 4) * 3 + 1)  # training mode: batch statistics
    >>> y.shape, bn.num_batches_tracked.item()
    (torch.Size([32, 4]), 1)
    """

    _accepted_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs; drop-in for ``torch.nn.BatchNorm2d``.

    Statistics per channel, over N, H and W.  Same arguments as ``BatchNorm1d``.

    Examples
    --------
    >>> import torch
    >>> bn = BatchNorm2d(6)
    >>> x = torch.randn(8, 6, 5, 5) + 2
    >>> _ = bn(x)
    >>> torch.allclose(bn.running_mean, 0.1 * x.mean((0, 2, 3)))
    True
    """

    _accepted_dims = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalization of (N, C, D, H, W) inputs; drop-in for ``torch.nn.BatchNorm3d``."""

    _accepted_dims = (5,)
