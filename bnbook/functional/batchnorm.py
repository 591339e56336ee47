"""Batch normalization (Ioffe & Szegedy 2015): ``batch_norm``, its closed-form backward pass.

Introduced in chapter 2, "Batch normalization from scratch"
(``notebooks/02_batch_norm_from_scratch.ipynb``).  Also home of ``_update_running_``, the
running-average update that ``instance_norm`` shares.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from bnbook._validate import ShapeError, check_momentum
from bnbook.functional._checks import (
    _affine_per_channel,
    _channel_shape,
    _check_batch_size,
    _check_eps,
    _check_input,
    _check_per_channel,
    _moments,
)

__all__ = ["batch_norm"]


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization (Ioffe & Szegedy 2015), like ``torch.nn.functional.batch_norm``.

    Parameters
    ----------
    input : Tensor
        Shape (N, C) or (N, C, *) -- e.g. (N, C, L), (N, C, H, W), (N, C, D, H, W).
    running_mean, running_var : Tensor of shape (C,) or None
        Running statistics.  Used for normalization when ``training=False``; updated *in
        place* when ``training=True`` (the variance with the unbiased estimate).
    weight, bias : Tensor of shape (C,) or None
        Per-channel scale gamma and shift beta; None means 1 and 0.
    training : bool
        True: normalize with the statistics of this batch.  False: with the running ones.
    momentum : float in [0, 1]
        Weight of the new batch in the running averages (PyTorch's convention).
    eps : float
        Added to the variance before the square root; > 0 when training.

    Returns
    -------
    Tensor
        Same shape as ``input``.

    Raises
    ------
    ValueError
        Batch with a single value per channel when training (same message as PyTorch), or
        eps out of range.
    ShapeError
        (a ValueError and a RuntimeError) wrong number of elements in a per-channel tensor.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(8, 3, 4, 4) * 2 + 5
    >>> y = batch_norm(x, None, None, training=True)  # mean 0, variance 1 per channel
    >>> bool(y.mean((0, 2, 3)).abs().max() < 1e-5), bool((y.var((0, 2, 3)) - 1).abs().max() < 0.1)
    (True, True)
    """
    _check_input(input, "batch_norm", min_dim=2)
    num_channels = input.shape[1]
    for name, t in [("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)]:  # fmt: skip
        _check_per_channel(name, t, num_channels, input)
    momentum = check_momentum(momentum, allow_none=False)
    _check_eps(eps, "batch_norm", positive=training)
    if training:
        _check_batch_size(input.shape)
        if (running_mean is None) != (running_var is None):
            raise ValueError("running_mean and running_var must either both be None or neither be None")
    else:
        for name, t in [("running_mean", running_mean), ("running_var", running_var)]:
            if t is None:
                raise ShapeError(f"{name} must be defined in evaluation mode")

    if training:
        if input.numel() == 0:  # an empty batch has no statistics; PyTorch skips it too
            return input.clone()
        out, mean, var = _BatchNormTraining.apply(input, weight, bias, eps)
        if running_mean is not None:
            n = input.numel() // num_channels  # values per channel
            _update_running_(running_mean, running_var, mean.view(-1), var.view(-1), n, momentum)
        return out

    # Inference: a fixed per-channel affine map built from the running statistics; autograd
    # differentiates it on its own.  1/std and gamma fold into one per-channel scale.
    shape = _channel_shape(input)  # (1, C, 1, 1) for a 4-D input
    scale = torch.rsqrt(running_var.view(shape) + eps)  # (1, C, 1, 1)
    if weight is not None:
        scale = scale * weight.view(shape)
    out = (input - running_mean.view(shape)) * scale  # (N, C, H, W)
    return _affine_per_channel(out, None, bias)


class _BatchNormTraining(torch.autograd.Function):
    """Training-mode batch norm with the closed-form backward pass of the BN chapter.

    Autograd could differentiate the forward pass by itself (``layer_norm`` and the other
    ops of this package rely on that), but it would record about ten full-size operations for the backward
    pass; the closed form needs five.  That keeps this from-scratch layer within reach of
    PyTorch's fused kernel when training LeNet.  The tests check it with ``gradcheck``.
    Second derivatives are not supported (``once_differentiable`` says so if asked).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float):
        dims = [0, *range(2, x.dim())]  # every axis except the channel axis
        shape = _channel_shape(x)  # (1, C, 1, 1) for a 4-D input
        centered, mean, var = _moments(x, dims)  # stats: (1, C, 1, 1)
        inv_std = torch.rsqrt(var + eps)  # (1, C, 1, 1)
        x_hat = centered.mul_(inv_std)  # (N, C, H, W); in place, `centered` is a temporary
        # out = gamma * x_hat + beta; addcmul does both in one pass in the usual affine case.
        if weight is not None and bias is not None:
            out = torch.addcmul(bias.view(shape), x_hat, weight.view(shape))
        elif weight is not None:
            out = x_hat * weight.view(shape)
        elif bias is not None:
            out = x_hat + bias.view(shape)
        else:  # a copy: an in-place op on the output (ReLU(inplace=True)) must not touch x_hat
            out = x_hat.clone()
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.dims, ctx.has_bias = dims, bias is not None
        ctx.mark_non_differentiable(mean, var)  # returned only for the running averages
        return out, mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, _grad_mean, _grad_var):
        x_hat, inv_std, weight = ctx.saved_tensors
        dims, shape = ctx.dims, inv_std.shape
        n = x_hat.numel() // x_hat.shape[1]  # values per channel
        grad_bias = grad_out.sum(dims)  # dL/dbeta, (C,)
        grad_weight = (grad_out * x_hat).sum(dims)  # dL/dgamma, (C,)
        grad_x = None
        if ctx.needs_input_grad[0]:
            # dL/dx = gamma / std * (g - mean(g) - x_hat * mean(g * x_hat)): the gradient
            # through x_hat, minus the two directions that subtracting the mean and dividing
            # by the std take away.  Expanded into per-channel coefficients a, b, c so that
            # the full-size work is two fused multiply-adds: dL/dx = a * g + b * x_hat + c.
            a = inv_std if weight is None else inv_std * weight.view(shape)  # (1, C, 1, 1)
            b = -a * grad_weight.view(shape) / n  # (1, C, 1, 1)
            c = -a * grad_bias.view(shape) / n  # (1, C, 1, 1)
            grad_x = torch.addcmul(c, x_hat, b).addcmul_(grad_out, a)  # (N, C, H, W)
        return (
            grad_x,
            grad_weight if weight is not None else None,
            grad_bias if ctx.has_bias else None,
            None,  # eps
        )


def _update_running_(
    running_mean: Tensor, running_var: Tensor, mean: Tensor, var: Tensor, n: int, momentum: float
) -> None:
    """Exponential moving average, in place: ``r <- (1 - momentum) * r + momentum * batch_stat``.

    PyTorch's convention: ``momentum`` weights the *new* batch.  The running variance stores
    the *unbiased* estimate ``var * n / (n - 1)`` because at test time it stands in for the
    population variance; only the normalization itself uses the biased one.
    """
    with torch.no_grad():  # buffers are statistics, not part of the graph
        running_mean.mul_(1.0 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1.0 - momentum).add_(var, alpha=momentum * n / (n - 1))
