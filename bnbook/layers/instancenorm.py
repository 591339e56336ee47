"""Instance normalization layers (Ulyanov et al. 2016): ``InstanceNorm1d``, ``2d``, ``3d``.

One of batch norm's relatives: the same parameters and buffers (``_NormBase``), statistics
per sample and channel.
"""

from __future__ import annotations

import warnings

from torch import Tensor

from bnbook import functional
from bnbook.layers._base import _check_channels, _check_dims, _NormBase

__all__ = ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]


class _InstanceNorm(_NormBase):
    """Instance normalization (Ulyanov et al. 2016): statistics per sample and channel.

    Same arguments as the batch norm layers but, as in PyTorch, ``affine=False`` and
    ``track_running_stats=False`` by default.  Also accepts unbatched inputs (no N axis).
    Quirk kept from PyTorch: with ``momentum=None`` the running statistics are not updated
    (PyTorch passes momentum 0) and ``num_batches_tracked`` is never incremented.
    """

    _unbatched_dim: int  # dimensionality of an input without the batch axis

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:
        _check_dims(input, self._accepted_dims)
        channel_dim = input.dim() - self._unbatched_dim  # 1 if batched, 0 if not
        if input.shape[channel_dim] != self.num_features:
            if self.affine or self.track_running_stats:
                _check_channels(input, self.num_features, channel_dim)
            # Without per-channel parameters or buffers num_features is unused: PyTorch only
            # warns, and so do we.
            warnings.warn(
                f"input's size at dim={channel_dim} does not match num_features. "
                "You can silence this warning by not passing in num_features, "
                "which is not used because affine=False",
                stacklevel=2,
            )
        if input.dim() == self._unbatched_dim:  # e.g. (C, L): add a batch axis of 1
            return self._instance_norm(input.unsqueeze(0)).squeeze(0)
        return self._instance_norm(input)

    def _instance_norm(self, input: Tensor) -> Tensor:
        return functional.instance_norm(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            # Instance statistics, except in eval mode when running ones are kept.
            use_input_stats=self.training or not self.track_running_stats,
            momentum=self.momentum if self.momentum is not None else 0.0,
            eps=self.eps,
        )


class InstanceNorm1d(_InstanceNorm):
    """Instance norm of (N, C, L) or unbatched (C, L) inputs; drop-in for ``nn.InstanceNorm1d``.

    Examples
    --------
    >>> import torch
    >>> y = InstanceNorm1d(3)(torch.randn(2, 3, 50) + 4)
    >>> bool(y.mean(2).abs().max() < 1e-5)
    True
    """

    _accepted_dims = (2, 3)
    _unbatched_dim = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance norm of (N, C, H, W) or (C, H, W) inputs; drop-in for ``nn.InstanceNorm2d``."""

    _accepted_dims = (3, 4)
    _unbatched_dim = 3


class InstanceNorm3d(_InstanceNorm):
    """Instance norm of (N, C, D, H, W) or (C, D, H, W); drop-in for ``nn.InstanceNorm3d``."""

    _accepted_dims = (4, 5)
    _unbatched_dim = 4
