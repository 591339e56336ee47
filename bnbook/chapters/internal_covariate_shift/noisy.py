"""Noisy batch norm: batch norm followed by noise that *creates* covariate shift (Santurkar et al. 2018).

Part of chapter 1, "Internal covariate shift" (``notebooks/01_internal_covariate_shift.ipynb``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from bnbook._impl import layers_module
from bnbook._validate import check_positive_int, check_real

__all__ = ["DEFAULT_NOISE", "NoisyBatchNorm1d"]

#: Default noise of :class:`NoisyBatchNorm1d` in the chapter's experiment.
DEFAULT_NOISE = {"shift": 1.0, "scale": 2.0, "jitter": 0.2}


class NoisyBatchNorm1d(nn.Module):
    """``BatchNorm1d`` followed by noise that shifts and rescales every unit, anew at every step.

    Santurkar et al. (2018), Sec. 2.1, inject "i.i.d. noise sampled from a non-zero mean and
    non-unit variance distribution" after each BN layer, a distribution that "changes at each
    time step". This layer is one concrete instance. At every forward pass in training mode
    (one pass = one SGD step) it draws, for every unit ``j``, a shift and a scale

    .. math::  \\mu_j \\sim U(-\\text{shift}, \\text{shift}), \\qquad
               s_j = \\text{scale}^{u_j},\\; u_j \\sim U(-1, 1),

    and returns ``s_j * BN(x)_ij + mu_j + jitter * eps_ij`` with ``eps_ij ~ N(0, 1)`` i.i.d.
    per example. So the next layer sees inputs whose per-unit mean and standard deviation jump
    at every step: severe covariate shift *after* the normalization. In eval mode no noise is
    added and the output equals the wrapped BN's.

    Parameters
    ----------
    num_features : int
        ``C`` of an ``(N, C)`` or ``(N, C, L)`` input.
    shift : float, default 1.0
        Half-width of the uniform distribution of the per-unit mean shift (>= 0).
    scale : float, default 2.0
        The per-unit scale lies in ``[1/scale, scale]``, log-uniformly (>= 1).
    jitter : float, default 0.0
        Standard deviation of the additional per-example Gaussian noise (>= 0).
    seed : int, default 0
        Seeds this layer's private ``torch.Generator`` (the global RNG is never used).
    impl : {"bnbook", "torch"}
        The wrapped layer: :class:`bnbook.layers.BatchNorm1d` or ``torch.nn.BatchNorm1d``.
    **bn_kwargs
        Passed to the wrapped ``BatchNorm1d`` (``eps``, ``momentum``, ``affine``, ...).

    Attributes
    ----------
    bn : nn.Module
        The wrapped batch norm layer; its parameters and buffers are this layer's.
    noise_shift, noise_scale : torch.Tensor or None
        The ``(C,)`` shift and scale drawn at the last training-mode forward pass.

    Examples
    --------
    >>> layer = NoisyBatchNorm1d(3, shift=0.0, scale=1.0, impl="torch")  # no noise: plain BN
    >>> x = torch.randn(8, 3)
    >>> torch.allclose(layer(x), torch.nn.functional.batch_norm(x, None, None, training=True))
    True
    """

    def __init__(
        self,
        num_features: int,
        *,
        shift: float = 1.0,
        scale: float = 2.0,
        jitter: float = 0.0,
        seed: int = 0,
        impl: str = "bnbook",
        **bn_kwargs,
    ) -> None:
        super().__init__()
        num_features = check_positive_int("num_features", num_features)
        self.shift = check_real("shift", shift, low=0.0)
        self.scale = check_real("scale", scale, low=1.0)
        self.jitter = check_real("jitter", jitter, low=0.0)
        self.bn = layers_module(impl).BatchNorm1d(num_features, **bn_kwargs)
        self.num_features = num_features
        self.seed = check_positive_int("seed", seed, minimum=0)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.noise_shift: Optional[torch.Tensor] = None
        self.noise_scale: Optional[torch.Tensor] = None

    def reset_noise(self, seed: Optional[int] = None) -> None:
        """Restart the noise sequence (from ``seed``, default the constructor's seed)."""
        if seed is not None:
            self.seed = check_positive_int("seed", seed, minimum=0)
        self.generator.manual_seed(self.seed)

    def rng_snapshot(self) -> tuple:
        """The noise generator's state and the last noise drawn (see :func:`bnbook.state.preserved`)."""
        return self.generator.get_state(), self.noise_shift, self.noise_scale

    def rng_restore(self, snapshot: tuple) -> None:
        """Undo every draw since :meth:`rng_snapshot`."""
        state, self.noise_shift, self.noise_scale = snapshot
        self.generator.set_state(state)

    @property
    def noisy(self) -> bool:
        """True if the layer adds any noise in training mode."""
        return self.shift > 0 or self.scale > 1 or self.jitter > 0

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - mirrors torch
        y = self.bn(input)  # (N, C) or (N, C, L); BN validates the shape
        if not self.training or not self.noisy:
            return y
        c = self.num_features
        g = self.generator  # a CPU generator: draw on the CPU, then move
        mu = (torch.rand(c, generator=g, dtype=torch.float64) * 2 - 1) * self.shift  # (C,)
        s = self.scale ** (torch.rand(c, generator=g, dtype=torch.float64) * 2 - 1)  # (C,)
        self.noise_shift, self.noise_scale = mu.to(y.dtype), s.to(y.dtype)
        view = (1, c) + (1,) * (y.dim() - 2)  # broadcast over N (and L)
        out = y * s.to(y).view(view) + mu.to(y).view(view)
        if self.jitter > 0:
            eps = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y)  # (N, C[, L])
            out = out + self.jitter * eps
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, shift={self.shift:g}, scale={self.scale:g}, jitter={self.jitter:g}, seed={self.seed}"
        )
