"""Layer normalization (Ba et al. 2016): each sample normalized over its trailing axes.

One of batch norm's relatives, next to ``instance_norm`` and ``group_norm``; the batch
normalization chapter (``notebooks/02_batch_norm_from_scratch.ipynb``) contrasts them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from bnbook._validate import check_floating
from bnbook.functional._checks import _check_elementwise, _check_eps, _check_normalized_shape, _moments

__all__ = ["layer_norm"]


def layer_norm(
    input: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalization (Ba et al. 2016), like ``torch.nn.functional.layer_norm``.

    Each sample is normalized with the mean and variance of its trailing
    ``len(normalized_shape)`` axes; no running statistics, same behaviour in training and
    evaluation.

    Parameters
    ----------
    input : Tensor
        Shape (*, *normalized_shape), e.g. (N, D) or (N, C, H, W) with
        ``normalized_shape=(C, H, W)``.
    normalized_shape : sequence of int
        The trailing shape to normalize over.
    weight, bias : Tensor of shape ``normalized_shape`` or None
        Elementwise scale and shift.
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    Tensor
        Same shape as ``input``.

    Examples
    --------
    >>> import torch
    >>> y = layer_norm(torch.randn(4, 10) + 3, (10,))  # each row: mean 0
    >>> bool(y.mean(1).abs().max() < 1e-5)
    True
    """
    check_floating("input", input)
    normalized_shape = _check_normalized_shape("layer_norm", input, normalized_shape)
    for name, t in [("weight", weight), ("bias", bias)]:
        _check_elementwise(name, t, normalized_shape, input)
    _check_eps(eps, "layer_norm")

    dims = tuple(range(-len(normalized_shape), 0))  # the trailing axes
    centered, _, var = _moments(input, dims)  # stats: (N, 1) for (N, D)
    out = centered * torch.rsqrt(var + eps)
    # weight and bias have shape normalized_shape: they broadcast from the right.
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out
