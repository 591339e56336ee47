"""The 3x100 sigmoid MLP of Ioffe & Szegedy (2015), Fig. 1, with no BN, BN or noisy BN.

Part of chapter 1, "Internal covariate shift" (``notebooks/01_internal_covariate_shift.ipynb``).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from bnbook._validate import check_choice, check_positive_int, check_real
from bnbook.chapters.internal_covariate_shift.noisy import DEFAULT_NOISE, NoisyBatchNorm1d
from bnbook.models import ioffe_mlp
from bnbook.state import check_module

__all__ = ["NORMS", "init_gaussian_", "build_mlp", "sigmoid_names"]

#: Values of ``norm`` accepted by :func:`build_mlp` and the experiment.
NORMS = ("none", "batch", "noisy")


def init_gaussian_(net: nn.Module, scale: float = 1.0, *, generator: Optional[torch.Generator] = None) -> nn.Module:
    """Gaussian initialization of every ``nn.Linear``: ``W ~ N(0, scale^2 / fan_in)``, ``b = 0``.

    ``scale = 1`` keeps the variance of a pre-activation equal to the mean square of the
    layer's inputs (LeCun's rule); larger values push sigmoids into saturation, smaller ones
    towards their linear regime. Ioffe & Szegedy (2015) only say "small random Gaussian
    values". Works in place and returns ``net``. Draws from ``generator`` (default: PyTorch's
    global generator, as ``torch.nn.init`` does).
    """
    check_module(net)
    scale = check_real("scale", scale, low=0.0, low_open=True)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                std = scale / math.sqrt(m.in_features)
                w = torch.randn(m.weight.shape, generator=generator, dtype=torch.float64)  # (out, in)
                m.weight.copy_(w * std)
                if m.bias is not None:
                    m.bias.zero_()
    return net


def build_mlp(
    norm: str = "none",
    *,
    in_features: int = 784,
    init_scale: float = 1.0,
    seed: int = 0,
    noise: Optional[dict] = None,
    impl: str = "bnbook",
) -> nn.Sequential:
    """The 3x100 sigmoid MLP of Ioffe & Szegedy (2015), Gaussian-initialized from ``seed``.

    Parameters
    ----------
    norm : {"none", "batch", "noisy"}
        No normalization, ``BatchNorm1d`` before each sigmoid, or :class:`NoisyBatchNorm1d`.
    in_features : int
        Input values per example (784 for MNIST, 64 for the 8x8 digits).
    init_scale : float
        See :func:`init_gaussian_`.
    seed : int
        Seeds the initialization and the noise (layer ``i`` uses ``seed + i``).
    noise : dict, optional
        Keyword arguments of :class:`NoisyBatchNorm1d` (default :data:`DEFAULT_NOISE`).
    impl : {"bnbook", "torch"}
        Source of the ``BatchNorm1d`` class.

    Returns
    -------
    nn.Sequential
        ``(N, ...)`` -> ``(N, 10)`` logits; layers named ``fc1, bn1|norm1, act1, ...``.
    """
    check_choice("norm", norm, NORMS)
    seed = check_positive_int("seed", seed, minimum=0)
    if not isinstance(noise, (dict, type(None))):
        raise TypeError(f"noise must be a dict of NoisyBatchNorm1d arguments, got {type(noise).__name__}")
    kwargs = dict(DEFAULT_NOISE if noise is None else noise)
    counter = iter(range(1, 1000))

    def noisy(num_features: int, spatial: bool) -> nn.Module:
        return NoisyBatchNorm1d(num_features, seed=seed + next(counter), impl=impl, **kwargs)

    # nn.Linear's default initialization draws from the global RNG; we overwrite it below,
    # and fork_rng leaves the caller's global random state exactly as it was.
    with torch.random.fork_rng(devices=[]):
        net = ioffe_mlp({"none": None, "batch": "batch", "noisy": noisy}[norm], impl=impl, in_features=in_features)
    return init_gaussian_(net, init_scale, generator=torch.Generator().manual_seed(seed))


def sigmoid_names(net: nn.Module) -> list[str]:
    """Names of the ``nn.Sigmoid`` children of ``net``, in order (``act1, act2, act3``)."""
    return [n for n, m in net.named_children() if isinstance(m, nn.Sigmoid)]
