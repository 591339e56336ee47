"""Per-sample normalization layers without running statistics: ``LayerNorm``, ``GroupNorm``, ``RMSNorm``.

Batch norm's relatives of Ba et al. (2016), Wu & He (2018) and Zhang & Sennrich (2019): the
same computation in training and eval mode, so no buffers, only the affine parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
from torch import Tensor, nn

from bnbook import functional
from bnbook._validate import check_eps, check_positive_int
from bnbook.layers._base import _check_channels, _register_affine, _reset_affine

__all__ = ["GroupNorm", "LayerNorm", "RMSNorm"]


def _as_shape(normalized_shape: int | Sequence[int]) -> tuple[int, ...]:
    """``normalized_shape`` as a tuple of positive ints (an int means a 1-tuple), as torch stores it."""
    if isinstance(normalized_shape, Integral):
        normalized_shape = (normalized_shape,)
    shape = tuple(normalized_shape)
    for d in shape:
        check_positive_int("normalized_shape entries", d)
    return shape


class LayerNorm(nn.Module):
    """Layer normalization (Ba et al. 2016); drop-in for ``torch.nn.LayerNorm``.

    Each sample is normalized over its trailing ``normalized_shape`` axes, with the same
    computation in training and eval mode (no running statistics).

    Parameters
    ----------
    normalized_shape : int or sequence of int
        Trailing shape to normalize over, e.g. ``D`` for (N, D) or ``(C, H, W)``.
    eps : float
        Added to the variance before the square root (> 0).
    elementwise_affine : bool
        Learn ``weight`` (init 1) and ``bias`` (init 0), both of shape ``normalized_shape``.
    bias : bool
        With ``elementwise_affine``, whether to learn the shift.
    device, dtype
        Where and in which dtype to create the parameters.

    Examples
    --------
    >>> import torch
    >>> ln = LayerNorm(10)
    >>> y = ln(torch.randn(4, 10) * 5)
    >>> bool(y.std(1, correction=0).sub(1).abs().max() < 1e-3)
    True
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        check_eps(eps)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        factory = {"device": device, "dtype": dtype}
        _register_affine(self, self.normalized_shape, elementwise_affine, bias, factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight 1 and bias 0."""
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:
        return functional.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class GroupNorm(nn.Module):
    """Group normalization (Wu & He 2018); drop-in for ``torch.nn.GroupNorm``.

    Splits the C channels of an (N, C, *) input into ``num_groups`` groups and normalizes each
    (sample, group) with its own statistics; no running statistics.

    Parameters
    ----------
    num_groups : int
        Number of groups G; must divide ``num_channels``.
    num_channels : int
        Number of channels C.
    eps : float
        Added to the variance before the square root (> 0).
    affine : bool
        Learn a per-channel ``weight`` (init 1) and ``bias`` (init 0), shape (C,).
    device, dtype
        Where and in which dtype to create the parameters.
    bias : bool, keyword-only
        With ``affine``, whether to learn the shift.

    Examples
    --------
    >>> import torch
    >>> gn = GroupNorm(2, 6)
    >>> gn(torch.randn(3, 6, 4, 4)).shape
    torch.Size([3, 6, 4, 4])
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int("num_groups", num_groups)
        check_positive_int("num_channels", num_channels)
        if num_channels % num_groups != 0:  # PyTorch's message
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        check_eps(eps)
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        factory = {"device": device, "dtype": dtype}
        _register_affine(self, num_channels, affine, bias, factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight 1 and bias 0."""
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() >= 2:  # fewer dimensions: group_norm raises PyTorch's error
            _check_channels(input, self.num_channels, name="num_channels")
        return functional.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


class RMSNorm(nn.Module):
    """Root mean square normalization (Zhang & Sennrich 2019); drop-in for ``torch.nn.RMSNorm``.

    ``y = x / sqrt(mean(x ** 2) + eps) * weight`` over the trailing ``normalized_shape`` axes of
    each sample: layer norm without the centring and without a bias.  Same computation in
    training and eval mode.

    Parameters
    ----------
    normalized_shape : int or sequence of int
        Trailing shape to normalize over, e.g. ``D`` for (N, D) or (N, T, D) features.
    eps : float > 0 or None
        Added to the mean square before the square root; None (default): the machine epsilon
        of the computation dtype (see :func:`bnbook.functional.rms_norm`).
    elementwise_affine : bool
        Learn ``weight`` (init 1) of shape ``normalized_shape``.  There is no bias, as in
        PyTorch.
    device, dtype
        Where and in which dtype to create the parameter.

    Examples
    --------
    >>> import torch
    >>> rms = RMSNorm(10)
    >>> rms
    RMSNorm((10,), eps=None, elementwise_affine=True)
    >>> y = rms(torch.randn(4, 10) * 5 + 3)
    >>> bool(y.pow(2).mean(1).sub(1).abs().max() < 1e-5)
    True
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        if eps is not None:
            check_eps(eps)
        self.eps = eps  # as given, None included, so that repr() reads like torch's
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:  # only a weight: torch's RMSNorm has no `bias` attribute at all
            self.weight = nn.Parameter(torch.empty(self.normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight 1."""
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, input: Tensor) -> Tensor:
        return functional.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
