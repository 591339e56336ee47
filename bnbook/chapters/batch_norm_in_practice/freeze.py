"""Freezing batch norm for fine-tuning, correctly: statistics that no ``model.train()`` can move.

Part of chapter 3, "Batch norm in practice" (``notebooks/03_batch_norm_in_practice.ipynb``),
section 3.  Two popular recipes do not freeze BN: ``requires_grad=False`` stops the gradient of
gamma and beta but not the running statistics (they are buffers, updated by every training-mode
forward pass), and ``bn.eval()`` is undone by the next ``model.train()``.
:func:`freeze_batch_norm` replaces every BN layer by a :class:`FrozenBatchNorm`, which always
normalizes with the stored statistics (like ``torchvision.ops.FrozenBatchNorm2d``, but for any
number of spatial dimensions and, optionally, with trainable gamma and beta).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from bnbook._validate import ShapeError, check_eps, check_positive_int
from bnbook.state import check_module

__all__ = ["FrozenBatchNorm", "batch_norm_layers", "freeze_batch_norm"]


def _is_batch_norm(m: nn.Module) -> bool:
    """torch.nn's BatchNorm1d/2d/3d (SyncBatchNorm and the Lazy ones included) and bnbook's twins."""
    if isinstance(m, _BatchNorm):
        return True
    from bnbook import layers  # the from-scratch twins share no base class with torch.nn's

    twins = (layers.BatchNorm1d, layers.BatchNorm2d, layers.BatchNorm3d, layers.SyncBatchNorm)
    return isinstance(m, twins)


def batch_norm_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{qualified name: module}`` of every batch norm layer in ``model`` (torch.nn's or bnbook's)."""
    check_module(model, "model")
    return {name: m for name, m in model.named_modules() if _is_batch_norm(m)}


class FrozenBatchNorm(nn.Module):
    """Batch norm with fixed statistics: ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias``.

    Behaves the same in training and eval mode.  ``running_mean`` and ``running_var`` are
    buffers (saved, moved, never updated); ``weight`` and ``bias`` are parameters whose
    ``requires_grad`` is ``train_affine`` (a BN layer with ``affine=False`` gets fixed ones).
    Accepts ``(N, C, *)`` inputs.

    Examples
    --------
    >>> bn = nn.BatchNorm2d(3).eval()
    >>> frozen = FrozenBatchNorm.from_batch_norm(bn)
    >>> x = torch.randn(2, 3, 4, 4)
    >>> torch.allclose(frozen.train()(x), bn(x))
    True
    """

    def __init__(self, num_features: int, eps: float = 1e-5, *, train_affine: bool = False):
        super().__init__()
        self.num_features = check_positive_int("num_features", num_features)
        self.eps = check_eps(eps)
        self.weight = nn.Parameter(torch.ones(num_features), requires_grad=bool(train_affine))
        self.bias = nn.Parameter(torch.zeros(num_features), requires_grad=bool(train_affine))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    @classmethod
    def from_batch_norm(cls, bn: nn.Module, *, train_affine: bool = False) -> FrozenBatchNorm:
        """A frozen copy of ``bn``'s statistics, gamma and beta (same dtype and device)."""
        if not _is_batch_norm(bn):
            raise TypeError(f"bn must be a batch norm layer, got {type(bn).__name__}")
        if getattr(bn, "running_mean", None) is None:
            raise ValueError(
                f"{type(bn).__name__} was built with track_running_stats=False: it has no statistics to "
                "freeze (it always normalizes with the batch's)"
            )
        ref = bn.running_mean
        frozen = cls(bn.num_features, bn.eps, train_affine=train_affine).to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            frozen.running_mean.copy_(bn.running_mean)
            frozen.running_var.copy_(bn.running_var)
            if bn.weight is not None:
                frozen.weight.copy_(bn.weight)
            if bn.bias is not None:
                frozen.bias.copy_(bn.bias)
        return frozen

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() < 2 or input.shape[1] != self.num_features:
            raise ShapeError(f"expected input (N, C={self.num_features}, *), got shape {list(input.shape)}")
        return nn.functional.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                                        training=False, eps=self.eps)  # fmt: skip

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, train_affine={self.weight.requires_grad}"


def freeze_batch_norm(model: nn.Module, *, train_affine: bool = False) -> nn.Module:
    """Replace, in place, every batch norm layer of ``model`` by a :class:`FrozenBatchNorm`; return ``model``.

    After this, neither ``model.train()`` nor any forward pass changes the BN statistics, and
    gamma/beta are trained only if ``train_affine``.  The ``state_dict`` keeps its keys apart
    from ``num_batches_tracked``.

    Raises
    ------
    ValueError
        If ``model`` has no batch norm layer (nothing to freeze: probably the wrong model), or a
        BN layer keeps no running statistics (``track_running_stats=False``).
    TypeError
        If ``model`` is not an ``nn.Module``, or is itself a single BN layer (use
        :meth:`FrozenBatchNorm.from_batch_norm` for that).
    """
    found = batch_norm_layers(model)
    if "" in found:
        raise TypeError("model is a single batch norm layer; use FrozenBatchNorm.from_batch_norm(bn)")
    if not found:
        raise ValueError(
            f"model ({type(model).__name__}) has no batch norm layer (nn.BatchNorm1d/2d/3d, SyncBatchNorm "
            "or bnbook's twins): there is nothing to freeze"
        )
    for name, bn in found.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, FrozenBatchNorm.from_batch_norm(bn, train_affine=train_affine))
    return model
