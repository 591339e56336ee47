"""Group normalization (Wu & He 2018): statistics per sample and group of channels.

One of batch norm's relatives: G = 1 is layer norm over (C, *), G = C is instance norm.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bnbook._validate import ShapeError, check_floating, check_positive_int
from bnbook.functional._checks import _affine_per_channel, _check_batch_size, _check_eps, _check_per_channel, _moments

__all__ = ["group_norm"]


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Group normalization (Wu & He 2018), like ``torch.nn.functional.group_norm``.

    The C channels are split into ``num_groups`` groups of C // G consecutive channels; each
    (sample, group) is normalized with its own statistics.  G = 1 is layer norm over
    (C, *), G = C is instance norm.

    Parameters
    ----------
    input : Tensor
        Shape (N, C, *), e.g. (N, C) or (N, C, H, W); C divisible by ``num_groups``.
    num_groups : int
        Number of groups G >= 1.
    weight, bias : Tensor of shape (C,) or None
        Per-channel (not per-group) scale and shift.
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    Tensor
        Same shape as ``input``.
    """
    check_floating("input", input)
    if input.dim() < 2:  # PyTorch's message
        raise ShapeError(f"Expected at least 2 dimensions for input tensor but received {input.dim()}")
    groups = check_positive_int("num_groups", num_groups)
    n, c = input.shape[:2]
    if c % groups != 0:
        raise ShapeError(
            "Expected number of channels in input to be divisible by num_groups, but got "
            f"input of shape {list(input.shape)} and num_groups={groups}"
        )
    for name, t in [("weight", weight), ("bias", bias)]:
        if t is not None and t.numel() != c:
            raise ShapeError(
                f"Expected {name} to be a vector of size equal to the number of channels in "
                f"input, but got {name} of shape {list(t.shape)} and input of shape "
                f"{list(input.shape)}"
            )
        _check_per_channel(name, t, c, input)
    _check_eps(eps, "group_norm")
    # PyTorch applies its batch-size test to the shape [N * C // G, G, *spatial]; we do the
    # same so that exactly the same inputs are rejected.
    _check_batch_size([n * c // groups, groups, *input.shape[2:]])

    # (N, C, *) -> (N, G, C // G * prod(*)): one row of statistics per (sample, group).
    grouped = input.reshape(n, groups, (c // groups) * input.shape[2:].numel())
    centered, _, var = _moments(grouped, [2])  # stats: (N, G, 1)
    out = (centered * torch.rsqrt(var + eps)).view(input.shape)  # back to (N, C, *)
    return _affine_per_channel(out, weight, bias)  # per channel, not per group
