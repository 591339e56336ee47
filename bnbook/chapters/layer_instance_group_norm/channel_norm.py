"""LayerNorm over the channels only, at every position: ConvNeXt's ``channels_first`` LayerNorm.

Part of chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm"
(``notebooks/04_layer_instance_group_norm.ipynb``), section "Common mistakes": ``nn.LayerNorm(C)``
applied to an ``(N, C, H, W)`` tensor normalizes over its *last* axis, W, not over the channels.
Normalizing each position's C-vector needs a permute to ``(N, H, W, C)`` and back, or this layer
(Liu et al. 2022, "A ConvNet for the 2020s", whose code calls it ``LayerNorm(data_format=
"channels_first")``).  It is neither ``GroupNorm(1, C)`` (which pools over C, H and W) nor
``InstanceNorm2d`` (which pools over H and W).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bnbook._validate import ShapeError, check_eps, check_floating, check_positive_int

__all__ = ["channel_layer_norm", "ChannelLayerNorm"]


def channel_layer_norm(
    x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-6
) -> Tensor:
    """Normalize the C-vector at every position of ``x`` (N, C, *), then scale and shift per channel.

    Parameters
    ----------
    x : Tensor
        Shape (N, C, *), floating point.
    weight, bias : Tensor of shape (C,) or None
        Per-channel scale and shift.
    eps : float
        Added to the variance (> 0); ConvNeXt uses 1e-6.

    Returns
    -------
    Tensor
        Same shape as ``x``.

    Examples
    --------
    >>> x = torch.randn(2, 3, 4, 5)
    >>> ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (3,), eps=1e-6).permute(0, 3, 1, 2)
    >>> torch.allclose(channel_layer_norm(x), ref, atol=1e-6)
    True
    """
    check_floating("x", x)
    if x.dim() < 2:
        raise ShapeError(f"x must have shape (N, C, *), got {x.dim()}D input of shape {list(x.shape)}")
    c = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(f"{name} must have shape ({c},) for x with C={c} channels, got {list(t.shape)}")
    eps = check_eps(eps)
    mean = x.mean(1, keepdim=True)  # (N, 1, *)
    var = x.var(1, keepdim=True, correction=0)  # (N, 1, *), biased
    out = (x - mean) * torch.rsqrt(var + eps)
    view = (1, c) + (1,) * (x.dim() - 2)
    if weight is not None:
        out = out * weight.view(view)
    if bias is not None:
        out = out + bias.view(view)
    return out


class ChannelLayerNorm(nn.Module):
    """LayerNorm of the channel vector at every position of an (N, C, *) input (ConvNeXt style).

    Parameters
    ----------
    num_channels : int
        C; ``weight`` (init 1) and ``bias`` (init 0) have shape (C,).
    eps : float, default 1e-6
        Added to the variance (> 0).
    elementwise_affine : bool, default True
        Learn ``weight`` and ``bias``.

    Examples
    --------
    >>> ln = ChannelLayerNorm(8)
    >>> y = ln(torch.randn(2, 8, 5, 5) * 3 + 1)
    >>> bool(y.mean(1).abs().max() < 1e-5)  # every position: mean 0 over the channels
    True
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, elementwise_affine: bool = True) -> None:
        super().__init__()
        self.num_channels = check_positive_int("num_channels", num_channels)
        self.eps = check_eps(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        check_floating("x", x)
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ShapeError(f"expected input of shape (N, {self.num_channels}, *) (num_channels), got {list(x.shape)}")
        return channel_layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
