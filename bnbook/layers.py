"""Normalization layers built on ``bnbook.functional``: drop-in twins of ``torch.nn``'s.

Introduced in the batch normalization chapter (``BatchNorm1d/2d/3d``) and the chapter on its
relatives (``LayerNorm``, ``InstanceNorm1d/2d/3d``, ``GroupNorm``).  Constructor arguments and
defaults, parameter and buffer names, shapes and dtypes, ``state_dict`` keys, ``repr``,
train/eval behaviour and the running statistics are those of ``torch.nn``, so a model can
swap one for the other and load the other's checkpoints.  ``tests/test_layers.py`` holds one
contract test run against every pair.

Learnable parameters (``weight`` = gamma, ``bias`` = beta) are ``nn.Parameter``s; running
statistics are *buffers*: saved in the ``state_dict`` and moved by ``.to()``, never trained.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from numbers import Integral

import torch
from torch import Tensor, nn

from bnbook import functional
from bnbook._validate import ShapeError, check_eps, check_momentum, check_positive_int

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "LayerNorm",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
]


def _check_channels(input: Tensor, expected: int, dim: int = 1, name: str = "num_features"):
    """The channel axis must match the per-channel parameters and buffers."""
    if input.shape[dim] != expected:
        raise ShapeError(
            f"expected input with C={expected} channels ({name}), got "
            f"{input.shape[dim]} (size of dim {dim} of input of shape {list(input.shape)})"
        )


def _check_dims(input: Tensor, accepted: tuple[int, ...]) -> None:
    """Raise PyTorch's ValueError, e.g. 'expected 2D or 3D input (got 4D input)'."""
    if input.dim() not in accepted:
        wanted = " or ".join(f"{d}D" for d in accepted)
        raise ValueError(f"expected {wanted} input (got {input.dim()}D input)")


def _register_affine(module: nn.Module, shape, affine: bool, bias: bool, factory: dict) -> None:
    """Register ``weight`` (gamma) and ``bias`` (beta) of ``shape``, or None like torch does."""
    gamma = nn.Parameter(torch.empty(shape, **factory)) if affine else None
    beta = nn.Parameter(torch.empty(shape, **factory)) if affine and bias else None
    module.register_parameter("weight", gamma)
    module.register_parameter("bias", beta)


def _reset_affine(module: nn.Module) -> None:
    """gamma 1 and beta 0: the layer starts as a pure normalization."""
    if module.weight is not None:
        nn.init.ones_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class _NormBase(nn.Module):
    """Parameters, buffers, reset and repr shared by batch and instance norm (as in PyTorch).

    Parameters
    ----------
    num_features : int
        Number of channels C.
    eps : float
        Added to the variance before the square root (> 0).
    momentum : float in [0, 1] or None
        Weight of the *new* batch in the running averages (PyTorch's convention, the opposite
        of an optimizer's momentum); None means a cumulative (equal-weight) average.
    affine : bool
        Learn a per-channel scale ``weight`` (init 1) and shift ``bias`` (init 0).
    track_running_stats : bool
        Keep ``running_mean``, ``running_var`` and ``num_batches_tracked`` buffers.  Without
        them the layer normalizes with batch statistics in eval mode too.
    device, dtype
        Where and in which floating dtype to create the parameters and buffers.
    bias : bool, keyword-only
        With ``affine=True``, whether to learn the shift.
    """

    _version = 2  # PyTorch's: version 2 added num_batches_tracked (see _load_from_state_dict)
    _accepted_dims: tuple[int, ...] = ()  # input dimensionalities, set by each subclass

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int("num_features", num_features)
        check_eps(eps)
        check_momentum(momentum)
        # Store the values as given (not converted) so that repr() reads exactly like torch's.
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        factory = {"device": device, "dtype": dtype}

        _register_affine(self, num_features, affine, bias, factory)  # gamma, beta: (C,)

        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            # A counter, hence int64 whatever the dtype; drives momentum=None.
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            # Registered as None so that the attribute exists and .to()/state_dict skip it.
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, batch counter 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics, and gamma to 1 and beta to 0: initially the identity."""
        self.reset_running_stats()
        _reset_affine(self)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
        error_msgs,
    ) -> None:  # fmt: skip
        # As in PyTorch: checkpoints from before num_batches_tracked existed (no version, or
        # version 1) load with the counter at its current value instead of failing.
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = (
                self.num_batches_tracked
                if self.num_batches_tracked is not None
                else torch.tensor(0, dtype=torch.long)
            )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


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

        factor = 0.0  # weight of this batch in the running averages (unused if not updated)
        if self.training and self.track_running_stats:
            # Counted before the functional call, exactly as PyTorch does.
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                # Cumulative moving average: the k-th batch gets weight 1/k, so the running
                # value is the plain mean of all batch statistics so far.
                factor = 1.0 / float(self.num_batches_tracked)
            else:
                factor = self.momentum

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
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )

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
        if isinstance(normalized_shape, Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        for d in self.normalized_shape:
            check_positive_int("normalized_shape entries", d)
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
        return functional.layer_norm(
            input, self.normalized_shape, self.weight, self.bias, self.eps
        )

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
            raise ValueError(
                f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})"
            )
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
