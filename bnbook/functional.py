"""Normalization ops written from scratch: batch, layer, instance and group norm.

Introduced in the batch normalization chapter (``batch_norm``) and reused in the chapter on
its relatives (``layer_norm``, ``instance_norm``, ``group_norm``).  Each function has the
signature and the semantics of its ``torch.nn.functional`` twin, but is written with plain
tensor operations (``mean``, broadcasting), so every step stays visible and autograd derives
the backward pass -- except for ``batch_norm`` in training mode, which supplies the chapter's
closed-form backward itself, for speed.  ``tests/test_functional.py`` checks everything
against PyTorch, including finite-difference gradient checks.

All four compute, for some choice of axes,

    y = (x - mean) / sqrt(var + eps) * weight + bias

with the *biased* variance (divide by n, not n - 1).  They differ only in what is averaged:

    batch_norm     (N, C, *)   per channel: over the batch and all spatial positions
    layer_norm     (*, D...)   per sample: over the trailing ``normalized_shape`` axes
    instance_norm  (N, C, *)   per sample and channel: over the spatial positions
    group_norm     (N, C, *)   per sample and group of C // G channels
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from bnbook._validate import (
    DTypeError,
    ShapeError,
    check_floating,
    check_momentum,
    check_positive_int,
)

__all__ = ["batch_norm", "layer_norm", "instance_norm", "group_norm"]


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def _moments(x: Tensor, dims: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(x - mean, mean, biased var)`` over ``dims``, statistics kept with size-1 dims.

    Two passes (mean first, then the mean of squared deviations) are as stable as Welford's
    algorithm even when the mean is large compared with the spread, and the centred tensor is
    reused for the output.  (``torch.var_mean`` would be a one-liner, but on CPU it was 3-7x
    slower than these two passes on LeNet's activations.)
    """
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dims, keepdim=True)  # biased: divides by n
    return centered, mean, var


def _check_eps(eps, fn: str, *, positive: bool = False) -> None:
    # PyTorch's wording: eps must be > 0 to normalize with batch statistics (a constant
    # channel has var = 0), and >= 0 otherwise.
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"{fn} eps must be a float, got {type(eps).__name__} ({eps!r})")
    if positive and not eps > 0.0:
        raise ValueError(f"{fn} eps must be positive during training, but got {eps}")
    if not eps >= 0.0:  # also rejects NaN
        raise ValueError(f"{fn} eps must be non-negative, but got {eps}")


def _check_input(input: Tensor, fn: str, min_dim: int) -> None:
    check_floating("input", input)
    if input.dim() < min_dim:
        raise ShapeError(
            f"{fn} expected input with at least {min_dim} dimensions "
            f"(N, C, ...), got {input.dim()}D input of shape {list(input.shape)}"
        )


def _check_dtype(name: str, t: Tensor | None, input: Tensor) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(t).__name__}")
    if t.dtype != input.dtype:
        raise DTypeError(
            f"mixed dtype: {name} has dtype {t.dtype} but input has dtype {input.dtype}; "
            "all tensors must share the same dtype"
        )


def _check_per_channel(name: str, t: Tensor | None, num: int, input: Tensor) -> None:
    """``t`` must be None or a vector of ``num`` values with the dtype of ``input``."""
    _check_dtype(name, t, input)
    if t is not None and t.numel() != num:  # same wording as PyTorch's own check
        raise ShapeError(f"{name} should contain {num} elements not {t.numel()}")


def _channel_shape(input: Tensor) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector against ``input``: (1, C, 1, ..., 1)."""
    return (1, input.shape[1]) + (1,) * (input.dim() - 2)


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


# --------------------------------------------------------------------------------------------
# Batch normalization
# --------------------------------------------------------------------------------------------


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
            raise ValueError(
                "running_mean and running_var must either both be None or neither be None"
            )
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
    if bias is not None:
        out = out + bias.view(shape)
    return out


class _BatchNormTraining(torch.autograd.Function):
    """Training-mode batch norm with the closed-form backward pass of the BN chapter.

    Autograd could differentiate the forward pass by itself (``layer_norm`` and the others
    below rely on that), but it would record about ten full-size operations for the backward
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


def _check_batch_size(size: Sequence[int]) -> None:
    # Batch statistics of a single value per channel are undefined (var = 0, x - mean = 0);
    # same test and message as PyTorch's.
    values_per_channel = size[0]
    for s in size[2:]:
        values_per_channel *= s
    if values_per_channel == 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {size}"
        )


# --------------------------------------------------------------------------------------------
# Layer normalization
# --------------------------------------------------------------------------------------------


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
    if isinstance(normalized_shape, int) or not isinstance(normalized_shape, Sequence):
        raise TypeError(
            "layer_norm(): normalized_shape must be a tuple or list of ints, "
            f"got {type(normalized_shape).__name__}"
        )
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0:
        raise ShapeError(
            "Expected normalized_shape to be at least 1-dimensional, i.e., containing at "
            "least one element, but got normalized_shape = []"
        )
    if k > input.dim() or tuple(input.shape[-k:]) != normalized_shape:
        raise ShapeError(
            f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
            f"[*, {', '.join(map(str, normalized_shape))}], but got input of size"
            f"{list(input.shape)}"
        )
    for name, t in [("weight", weight), ("bias", bias)]:
        if t is not None and tuple(t.shape) != normalized_shape:
            raise ShapeError(
                f"Expected {name} to be of same shape as normalized_shape, but got {name} of "
                f"shape {list(t.shape)} and normalized_shape = {list(normalized_shape)}"
            )
        _check_dtype(name, t, input)
    _check_eps(eps, "layer_norm")

    dims = tuple(range(-k, 0))  # the trailing axes
    centered, _, var = _moments(input, dims)  # stats: (N, 1) for (N, D)
    out = centered * torch.rsqrt(var + eps)
    # weight and bias have shape normalized_shape: they broadcast from the right.
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


# --------------------------------------------------------------------------------------------
# Instance normalization
# --------------------------------------------------------------------------------------------


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
        raise ValueError(
            "running_mean and running_var must either both be None or neither be None"
        )

    shape = _channel_shape(input)  # (1, C, 1, 1)
    if use_input_stats:
        spatial = input.shape[2:].numel()
        if spatial == 1:  # one value per instance: no statistics (PyTorch's message)
            raise ValueError(
                "Expected more than 1 spatial element when training, got input size "
                f"{input.size()}"
            )
        dims = list(range(2, input.dim()))  # the spatial axes
        centered, mean, var = _moments(input, dims)  # stats: (N, C, 1, 1)
        if running_mean is not None:
            # One running value per channel: average the per-instance statistics over N.
            batch_mean = mean.mean(0).view(-1)  # (C,)
            batch_var = var.mean(0).view(-1)  # (C,)
            _update_running_(running_mean, running_var, batch_mean, batch_var, spatial, momentum)
    else:
        if running_mean is None:
            raise ShapeError(
                "Expected running_mean and running_var to be defined when use_input_stats "
                "is false"
            )
        var = running_var.view(shape)
        centered = input - running_mean.view(shape)

    out = centered * torch.rsqrt(var + eps)  # (N, C, H, W)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out


# --------------------------------------------------------------------------------------------
# Group normalization
# --------------------------------------------------------------------------------------------


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
        raise ShapeError(
            f"Expected at least 2 dimensions for input tensor but received {input.dim()}"
        )
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

    shape = _channel_shape(input)  # (1, C, 1, 1)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out
