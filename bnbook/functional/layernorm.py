"""Per-sample normalization over the trailing axes: layer norm and RMS norm.

``layer_norm`` (Ba et al. 2016) centres and scales each sample; ``rms_norm`` (Zhang & Sennrich
2019) only rescales it by its root mean square -- no mean subtracted, no bias -- which is
what most transformers use today.  Batch norm's relatives, next to ``instance_norm`` and
``group_norm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from bnbook._validate import check_eps, check_floating
from bnbook.functional._checks import _check_elementwise, _check_eps, _check_normalized_shape, _moments

__all__ = ["layer_norm", "rms_norm"]


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


def rms_norm(
    input: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """Root mean square normalization (Zhang & Sennrich 2019), like ``torch.nn.functional.rms_norm``.

    ``y = x / sqrt(mean(x ** 2) + eps) * weight``, the mean taken over the trailing
    ``len(normalized_shape)`` axes of each sample.  Unlike ``layer_norm`` nothing is
    subtracted: the output keeps the sign pattern and direction of ``x`` and only its scale is
    normalized.  As in PyTorch, float16 and bfloat16 inputs are computed in float32 and the
    result is cast back.

    Parameters
    ----------
    input : Tensor
        Shape (*, *normalized_shape), e.g. (N, D) or (N, T, D) with ``normalized_shape=(D,)``.
    normalized_shape : sequence of int
        The trailing shape to normalize over.
    weight : Tensor of shape ``normalized_shape`` or None
        Elementwise scale; same dtype as ``input``.
    eps : float > 0 or None
        Added to the mean square before the square root.  None (PyTorch's default): the
        machine epsilon of the computation dtype, ``torch.finfo(torch.float32).eps`` for
        float16, bfloat16 and float32 inputs, ``torch.finfo(torch.float64).eps`` for float64.
        Unlike PyTorch, eps <= 0 is refused (0 gives NaN for an all-zero sample).

    Returns
    -------
    Tensor
        Same shape and dtype as ``input``.

    Raises
    ------
    ShapeError
        (a ValueError and a RuntimeError, with PyTorch's message) ``normalized_shape`` is
        empty or not the trailing shape of ``input``, or ``weight`` has another shape.
    TypeError
        ``normalized_shape`` is not a sequence, ``input`` is not floating point, ``weight``
        has another dtype (``DTypeError``), or ``eps`` is not a number.
    ValueError
        ``eps`` is not a finite number > 0.

    Examples
    --------
    >>> import torch
    >>> y = rms_norm(torch.randn(4, 10) * 5 + 3, (10,))  # each row: mean square 1
    >>> bool(y.pow(2).mean(1).sub(1).abs().max() < 1e-5)
    True
    """
    check_floating("input", input)
    normalized_shape = _check_normalized_shape("rms_norm", input, normalized_shape)
    _check_elementwise("weight", weight, normalized_shape, input)
    # Half-precision inputs are computed in float32, like PyTorch's "opmath" type.
    opmath = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype
    eps = torch.finfo(opmath).eps if eps is None else check_eps(eps)

    x = input.to(opmath)
    dims = tuple(range(-len(normalized_shape), 0))  # the trailing axes
    out = x * torch.rsqrt((x * x).mean(dims, keepdim=True) + eps)  # mean square: (N, 1) for (N, D)
    if weight is not None:  # shape normalized_shape: broadcasts from the right
        out = out * weight
    return out.to(input.dtype)
