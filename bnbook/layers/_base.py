"""What the normalization layers share: ``_NormBase`` and the affine and input-shape helpers.

``_NormBase`` holds the parameters, buffers, ``reset_*``, ``repr`` and checkpoint
compatibility of batch and instance norm, as ``torch.nn.modules.batchnorm._NormBase`` does.
Other modules subclass it through ``bnbook.layers._BatchNorm`` / ``_InstanceNorm``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bnbook._validate import ShapeError, check_eps, check_momentum, check_positive_int

__all__: list[str] = []  # private: bnbook.layers re-exports what is public


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
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
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
                self.num_batches_tracked if self.num_batches_tracked is not None else torch.tensor(0, dtype=torch.long)
            )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
