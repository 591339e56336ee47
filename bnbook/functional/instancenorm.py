"""Instance normalization (Ulyanov et al. 2016): statistics per sample and channel.

One of batch norm's relatives; it shares the running-average update of ``batch_norm``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bnbook._validate import ShapeError, check_momentum
from bnbook.functional._checks import (
    _affine_per_channel,
    _channel_shape,
    _check_eps,
    _check_input,
    _check_per_channel,
    _moments,
)
from bnbook.functional.batchnorm import _update_running_

__all__ = ["instance_norm"]


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Instance normalization (Ulyanov et al. 2016), like ``torch.nn.functional.instance_norm``.

    Every (sample, channel) pair is normalized with the statistics of its own spatial
    positions.

    Parameters
    ----------
    input : Tensor
        Shape (N, C, *), e.g. (N, C, L) or (N, C, H, W).
    running_mean, running_var : Tensor of shape (C,) or None
        Optional running statistics.  With ``use_input_stats=True`` they are updated in place
        with the per-instance statistics averaged over the batch (variance unbiased over the
        spatial positions), exactly like PyTorch; with ``use_input_stats=False`` they are
        used for normalization.
    weight, bias : Tensor of shape (C,) or None
        Per-channel scale and shift.
    use_input_stats : bool
        True: statistics of each instance.  False: the running statistics.
    momentum : float in [0, 1]
        Weight of the new batch in the running averages.
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    Tensor
        Same shape as ``input``.
    """
    _check_input(input, "instance_norm", min_dim=2)
    num_channels = input.shape[1]
    for name, t in [("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)]:  # fmt: skip
        _check_per_channel(name, t, num_channels, input)
    momentum = check_momentum(momentum, allow_none=False)
    _check_eps(eps, "instance_norm")
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must either both be None or neither be None")

    shape = _channel_shape(input)  # (1, C, 1, 1)
    if use_input_stats:
        spatial = input.shape[2:].numel()
        if spatial == 1:  # one value per instance: no statistics (PyTorch's message)
            raise ValueError(f"Expected more than 1 spatial element when training, got input size {input.size()}")
        dims = list(range(2, input.dim()))  # the spatial axes
        centered, mean, var = _moments(input, dims)  # stats: (N, C, 1, 1)
        if running_mean is not None:
            # One running value per channel: average the per-instance statistics over N.
            batch_mean = mean.mean(0).view(-1)  # (C,)
            batch_var = var.mean(0).view(-1)  # (C,)
            _update_running_(running_mean, running_var, batch_mean, batch_var, spatial, momentum)
    else:
        if running_mean is None:
            raise ShapeError("Expected running_mean and running_var to be defined when use_input_stats is false")
        var = running_var.view(shape)
        centered = input - running_mean.view(shape)

    out = centered * torch.rsqrt(var + eps)  # (N, C, H, W)
    return _affine_per_channel(out, weight, bias)
