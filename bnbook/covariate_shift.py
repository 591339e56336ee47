"""Experiments of chapter 1, "Internal covariate shift": what the hypothesis claims, and tests of it.

Three experiments, each one function, all on the 3x100 sigmoid MLP of Ioffe & Szegedy (2015)
(:func:`bnbook.models.ioffe_mlp`):

* :func:`run_experiment` trains the MLP without BN, with BN, or with *noisy* BN and records
  test accuracy against steps and the 15th/50th/85th percentiles of the inputs to the
  sigmoids (Ioffe & Szegedy 2015, Fig. 1) with :class:`bnbook.probes.ActivationProbe`.
* :class:`NoisyBatchNorm1d` is batch norm followed by noise whose mean and variance change at
  every training step (Santurkar et al. 2018, Sec. 2.1): it *creates* covariate shift.
* :func:`gradient_landscape` moves along the negative gradient and measures how much the loss
  and the gradient change (Santurkar et al. 2018, Fig. 4).

:func:`make_panel` builds the chapter's slider panel (learning rate, init scale, BN, layer).

References: Ioffe & Szegedy (2015) https://arxiv.org/abs/1502.03167 ;
Santurkar, Tsipras, Ilyas & Madry (2018) https://arxiv.org/abs/1805.11604 .
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from numbers import Real
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, Subset,
                              TensorDataset)

from ._validate import check_choice, check_positive_int

__all__ = [
    "NORMS",
    "NoisyBatchNorm1d",
    "init_gaussian_",
    "build_mlp",
    "load_data",
    "ShiftRun",
    "run_experiment",
    "gradient_landscape",
    "percentile_drift",
    "make_panel",
]

#: Values of ``norm`` accepted by :func:`build_mlp` and :func:`run_experiment`.
NORMS = ("none", "batch", "noisy")

_HUGE = 1e30  # outer histogram edge: catches everything beyond hist_range

#: Default noise of :class:`NoisyBatchNorm1d` in the chapter's experiment.
DEFAULT_NOISE = {"shift": 1.0, "scale": 2.0, "jitter": 0.2}


# ----------------------------------------------------------------------------- checks
def _check_float(name: str, value, *, low: float = 0.0, low_open: bool = True) -> float:
    """A finite real number > low (or >= low with ``low_open=False``)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not math.isfinite(value) or value < low or (low_open and value == low):
        rel = ">" if low_open else ">="
        raise ValueError(f"{name} must be a finite float {rel} {low:g}, got {value}")
    return value


def _check_net(net) -> nn.Module:
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
    return net


# ----------------------------------------------------------------------------- noisy BN
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
        self.shift = _check_float("shift", shift, low_open=False)
        self.scale = _check_float("scale", scale, low=1.0, low_open=False)
        self.jitter = _check_float("jitter", jitter, low_open=False)
        check_choice("impl", impl, ("bnbook", "torch"))
        if impl == "torch":
            self.bn = nn.BatchNorm1d(num_features, **bn_kwargs)
        else:
            from .layers import BatchNorm1d  # the from-scratch layer of chapter 2

            self.bn = BatchNorm1d(num_features, **bn_kwargs)
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
        return (f"{self.num_features}, shift={self.shift:g}, scale={self.scale:g}, jitter={self.jitter:g}, "
                f"seed={self.seed}")


# ----------------------------------------------------------------------------- the network
def init_gaussian_(net: nn.Module, scale: float = 1.0, *, generator: Optional[torch.Generator] = None) -> nn.Module:
    """Gaussian initialization of every ``nn.Linear``: ``W ~ N(0, scale^2 / fan_in)``, ``b = 0``.

    ``scale = 1`` keeps the variance of a pre-activation equal to the mean square of the
    layer's inputs (LeCun's rule); larger values push sigmoids into saturation, smaller ones
    towards their linear regime. Ioffe & Szegedy (2015) only say "small random Gaussian
    values". Works in place and returns ``net``. Draws from ``generator`` (default: PyTorch's
    global generator, as ``torch.nn.init`` does).
    """
    _check_net(net)
    scale = _check_float("scale", scale)
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
    from .models import ioffe_mlp

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


def _act_names(net: nn.Module) -> list[str]:
    return [n for n, m in net.named_children() if isinstance(m, nn.Sigmoid)]


# ----------------------------------------------------------------------------- data
def load_data(name: Optional[str] = None, *, batch_size: int = 60):
    """The chapter's data: MNIST as in the paper if available, else the embedded 8x8 digits.

    ``name`` defaults to env ``BNBOOK_DATA`` or ``"mnist"``. If that dataset cannot be loaded
    (offline, not cached), falls back to :func:`bnbook.data.load` ``("digits")`` at its native
    8x8 size (64 inputs; upsampling to 28x28 would add no information) and prints one line
    saying so. Images read by torchvision are decoded once and kept in memory as tensors
    (about 190 MB for MNIST): the experiments index them hundreds of thousands of times.

    Returns
    -------
    bnbook.data.Loaders
        ``(train_iter, test_iter)`` over in-memory ``TensorDataset`` objects, with ``.info``.
    """
    from .data import DatasetUnavailable, Loaders, load

    name = name or os.environ.get("BNBOOK_DATA") or "mnist"
    try:
        loaders = load(name, batch_size=batch_size)
    except DatasetUnavailable as e:
        loaders = load("digits", batch_size=batch_size)
        print(f"bnbook.covariate_shift: {e.reason}; using scikit-learn's {loaders.info.num_train} + "
              f"{loaders.info.num_test} embedded 8x8 digits (64 pixels) instead. Set BNBOOK_DATA to choose.")
    train_ds, test_ds = (_in_memory(it.dataset) for it in loaders)
    if train_ds is loaders[0].dataset and test_ds is loaders[1].dataset:
        return loaders
    train_iter = DataLoader(train_ds, batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    return Loaders(train_iter, DataLoader(test_ds, batch_size), loaders.info)


def _in_memory(ds: Dataset) -> TensorDataset:
    """``ds`` as a TensorDataset ``(X (N, C, H, W), y (N,))``, decoding every example once."""
    if isinstance(ds, TensorDataset):
        return ds
    return TensorDataset(*_first(ds, len(ds)))


def _split(data) -> tuple[Dataset, Dataset]:
    """``(train_dataset, test_dataset)`` of Loaders / a pair of DataLoaders."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError("data must be bnbook.data.Loaders or a pair (train_iter, test_iter) of DataLoaders")
    out = []
    for name, it in zip(("train_iter", "test_iter"), data):
        ds = getattr(it, "dataset", None)
        if ds is None:
            raise TypeError(f"{name} must be a torch DataLoader (with .dataset), got {type(it).__name__}")
        if len(ds) == 0:
            raise ValueError(f"{name} has an empty dataset")
        out.append(ds)
    return out[0], out[1]


def _head(ds: Dataset, n: Optional[int]) -> Dataset:
    """The first ``n`` examples of ``ds`` (all if None), still a TensorDataset if ``ds`` is one."""
    if n is None or n >= len(ds):
        return ds
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[:n] for t in ds.tensors))
    return Subset(ds, range(n))


def _loader(ds: Dataset, batch_size: int, *, generator: Optional[torch.Generator] = None) -> DataLoader:
    """A DataLoader (shuffled with ``generator`` if given, then without the last partial batch).

    A TensorDataset (the embedded digits) is indexed a whole batch at a time, which gives the
    same batches as ``DataLoader(ds, batch_size, shuffle=True, generator=generator,
    drop_last=True)`` several times faster than collating examples one by one.
    """
    shuffle = generator is not None
    if isinstance(ds, TensorDataset):
        sampler = RandomSampler(ds, generator=generator) if shuffle else SequentialSampler(ds)
        return DataLoader(ds, sampler=BatchSampler(sampler, batch_size, drop_last=shuffle), batch_size=None,
                          generator=generator)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=shuffle)


def _first(ds: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples of ``ds`` as ``(X (n, ...), y (n,))``."""
    Xs, ys = zip(*_loader(_head(ds, n), 1000))
    return torch.cat(Xs), torch.cat(ys)


# ----------------------------------------------------------------------------- state handling
@contextlib.contextmanager
def _preserved(net: nn.Module, params: bool = False) -> Iterator[None]:
    """Restore buffers (BN running statistics), noise generators (and parameters) on exit.

    Lets us probe or measure a network in training mode without changing its training.
    """
    tensors = list(net.buffers()) + (list(net.parameters()) if params else [])
    saved = [t.detach().clone() for t in tensors]
    noisy = [m for m in net.modules() if isinstance(m, NoisyBatchNorm1d)]
    states = [(m.generator.get_state(), m.noise_shift, m.noise_scale) for m in noisy]
    modes = {m: m.training for m in net.modules()}
    try:
        yield
    finally:
        with torch.no_grad():
            for t, s in zip(tensors, saved):
                t.copy_(s)
        for m, (g, mu, s) in zip(noisy, states):
            m.generator.set_state(g)
            m.noise_shift, m.noise_scale = mu, s
        for m, training in modes.items():
            m.training = training


def _flat_grad(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def gradient_landscape(
    net: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    etas: Sequence[float],
    *,
    training: bool = True,
) -> dict:
    """Loss and gradient along the negative gradient direction (Santurkar et al. 2018, Fig. 4).

    With ``w`` the parameters, ``L`` the mean cross-entropy on the batch ``(X, y)`` and
    ``g = grad L(w)``, evaluates for every step size ``eta``

    * ``loss[k] = L(w - eta_k g)``   (how much the loss varies along the step: "loss landscape")
    * ``grad_change[k] = ||grad L(w - eta_k g) - g||``  ("gradient predictiveness")

    and ``beta[k] = grad_change[k] / (eta_k ||g||)``, whose maximum Santurkar et al. call the
    "effective beta-smoothness". The network is left exactly as it was (parameters, BN
    running statistics, noise generators, train/eval flags). (A :class:`NoisyBatchNorm1d`
    draws fresh noise at every forward pass, so its measurements include the noise.)

    Parameters
    ----------
    net : nn.Module
        Maps ``X`` to ``(N, num_classes)`` logits.
    X, y : torch.Tensor
        A batch, ``(N, ...)`` and int64 ``(N,)``.
    etas : sequence of float
        Step sizes (> 0).
    training : bool, default True
        Evaluate in training mode (BN uses the batch's statistics, as during SGD).

    Returns
    -------
    dict
        ``loss0`` (float), ``grad_norm`` (float), and arrays of shape ``(E,)``: ``etas``,
        ``loss``, ``grad_change``, ``beta``.
    """
    _check_net(net)
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("X and y must be torch.Tensors")
    if y.dim() != 1 or X.shape[0] != y.shape[0] or y.shape[0] < 2:
        raise ValueError(f"X (N, ...) and y (N,) must hold the same N >= 2 examples, "
                         f"got {tuple(X.shape)} and {tuple(y.shape)}")
    etas_arr = np.asarray(etas, dtype=np.float64).ravel()
    if etas_arr.size == 0 or not np.all(np.isfinite(etas_arr)) or np.any(etas_arr <= 0):
        raise ValueError(f"etas must be a non-empty sequence of finite step sizes > 0, got {etas!r}")
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ValueError("net has no trainable parameters")
    loss_fn = nn.CrossEntropyLoss()
    with _preserved(net, params=True):
        net.train(training)
        w0 = [p.detach().clone() for p in params]
        loss0 = loss_fn(net(X), y)
        g0 = _flat_grad(loss0, params)  # (P,)
        g_norm = float(g0.norm())
        losses, changes = [], []
        for eta in etas_arr:
            with torch.no_grad():
                offset = 0
                for p, w in zip(params, w0):
                    n = p.numel()
                    p.copy_(w - float(eta) * g0[offset:offset + n].view_as(p))
                    offset += n
            loss = loss_fn(net(X), y)
            g = _flat_grad(loss, params)
            losses.append(loss.item())
            changes.append(float((g - g0).norm()))
    losses_arr, changes_arr = np.asarray(losses), np.asarray(changes)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = changes_arr / (etas_arr * g_norm) if g_norm > 0 else np.full_like(changes_arr, np.nan)
    return {"loss0": loss0.item(), "grad_norm": g_norm, "etas": etas_arr, "loss": losses_arr,
            "grad_change": changes_arr, "beta": beta}


# ----------------------------------------------------------------------------- the runner
@dataclasses.dataclass
class ShiftRun:
    """What :func:`run_experiment` recorded. Arrays are NumPy; ``T`` = number of record steps.

    Attributes
    ----------
    config : dict
        The arguments of the run (norm, lr, init_scale, seed, batch_size, num_steps, ...).
    steps : ndarray (T,)
        Steps at which statistics were recorded (0 = before training).
    test_acc : ndarray (T,)
        Test accuracy (eval mode) at those steps.
    loss : ndarray (S,)
        Training loss of every step actually taken.
    unit_percentiles : ndarray (T, 3)
        15th/50th/85th percentile of the input to sigmoid ``unit`` of the last hidden layer,
        over the probe examples, in training mode (what SGD sees at that step).
    layer_percentiles : ndarray (L, T, 3)
        The same over all units of each hidden layer pooled (from the probe).
    layer_mean, layer_std : ndarray (L, T)
    edges : ndarray (B + 1,)
        Histogram bin edges.
    hist : ndarray (L, T, B)
        Density histograms of the sigmoid inputs of each layer over ``hist_range`` (a row
        integrates to the fraction of values inside the range).
    outside : ndarray (L, T, 2)
        Fraction of values below and above ``hist_range``.
    landscape : dict or None
        ``steps (M,)``, ``etas (E,)``, ``loss0 (M,)``, ``loss (M, E)``, ``grad_norm (M,)``,
        ``grad_change (M, E)``, ``beta (M, E)`` from :func:`gradient_landscape`.
    diverged_at : int or None
        Step at which training was stopped because the loss blew up (see ``max_loss``).
    seconds : float
        Wall-clock time of the run.
    dataset : str
    """

    config: dict
    steps: np.ndarray
    test_acc: np.ndarray
    loss: np.ndarray
    unit_percentiles: np.ndarray
    layer_percentiles: np.ndarray
    layer_mean: np.ndarray
    layer_std: np.ndarray
    edges: np.ndarray
    hist: np.ndarray
    outside: np.ndarray
    landscape: Optional[dict] = None
    diverged_at: Optional[int] = None
    seconds: float = 0.0
    dataset: str = ""

    @property
    def final_acc(self) -> float:
        """Test accuracy at the last record step."""
        return float(self.test_acc[-1])

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def steps_to(self, accuracy: float) -> Optional[int]:
        """First record step whose test accuracy is >= ``accuracy`` (None if never)."""
        hit = np.nonzero(self.test_acc >= accuracy)[0]
        return int(self.steps[hit[0]]) if hit.size else None

    def label(self) -> str:
        """Short description, e.g. ``"BN, lr 0.5, init x1"``."""
        name = {"none": "no BN", "batch": "BN", "noisy": "noisy BN"}[self.config["norm"]]
        return f"{name}, lr {self.config['lr']:g}, init x{self.config['init_scale']:g}"


class _Stop(Exception):
    """Raised from the training callback to end a run early (step budget or divergence)."""


def _record_steps(num_steps: int, record_every: Optional[int], extra: Sequence[int]) -> list[int]:
    every = record_every or max(1, num_steps // 50)
    steps = set(range(0, num_steps + 1, every)) | {num_steps} | {int(s) for s in extra if 0 <= s <= num_steps}
    return sorted(steps)


def run_experiment(
    data,
    *,
    norm: str = "none",
    lr: float = 0.5,
    init_scale: float = 1.0,
    num_steps: int = 1000,
    batch_size: int = 60,
    seed: int = 0,
    record_every: Optional[int] = None,
    record_steps: Sequence[int] = (),
    unit: int = 0,
    probe_size: int = 500,
    eval_size: Optional[int] = None,
    bins: int = 96,
    hist_range: tuple[float, float] = (-12.0, 12.0),
    noise: Optional[dict] = None,
    landscape_every: Optional[int] = None,
    etas: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
    max_loss: Optional[float] = None,
    impl: str = "bnbook",
    device: Union[None, str, torch.device] = "cpu",
    num_threads: Optional[int] = 1,
) -> ShiftRun:
    """Train the Ioffe-Szegedy MLP with plain SGD and record what chapter 1 plots.

    The loop is :func:`bnbook.train.train` (cross-entropy, SGD, no weight decay); statistics
    are recorded at step 0 and every ``record_every`` steps from a callback:

    * test accuracy (eval mode) on the first ``eval_size`` test examples (default: all);
    * with an :class:`~bnbook.probes.ActivationProbe` on every sigmoid (``where="input"``),
      percentiles, mean, std and histograms of the sigmoid inputs, per layer, for the first
      ``probe_size`` test examples passed through the network *in training mode* (BN uses
      the batch's statistics, noisy BN draws this step's noise); plus the percentiles of one
      ``unit`` of the last hidden layer (Ioffe & Szegedy's "typical sigmoid").
      Recording never changes the training: running statistics and noise generators are
      restored afterwards;
    * optionally :func:`gradient_landscape` every ``landscape_every`` steps on a random
      training batch, with step sizes ``lr * etas``.

    Parameters
    ----------
    data : bnbook.data.Loaders or (train_iter, test_iter)
        Only the datasets are used: the run makes its own loader with ``batch_size`` and a
        generator seeded by ``seed``, so runs are reproducible in any order.
    norm : {"none", "batch", "noisy"}
    lr : float
        SGD learning rate.
    init_scale : float
        Weight scale of :func:`init_gaussian_` (1 = LeCun normal).
    num_steps : int
        SGD steps (Ioffe & Szegedy: 50,000 steps of 60 MNIST examples).
    batch_size, seed : int
    record_every : int, optional
        Default: ``num_steps // 50``. ``record_steps`` adds more steps.
    unit : int
        Index of the tracked sigmoid in the last hidden layer.
    probe_size, eval_size : int
    bins, hist_range :
        Histogram bins (equal width) over ``hist_range``.
    noise : dict, optional
        Arguments of :class:`NoisyBatchNorm1d` for ``norm="noisy"``.
    landscape_every : int, optional
        Measure the landscape every so many steps (None: never).
    etas : sequence of float
        Step sizes of the landscape measurement, as multiples of ``lr``.
    max_loss : float, optional
        Stop and report divergence when the mean loss of the last 10 steps exceeds this
        (default ``10 * ln(num_classes)``, ten times the loss of a uniform guess); a NaN or
        infinite loss always counts as divergence.
    impl : {"bnbook", "torch"}
    device : str or torch.device, default "cpu"
        The MLP is tiny; on a GPU the overhead per step exceeds the work.
    num_threads : int or None, default 1
        PyTorch CPU threads during the run, restored afterwards (None: leave as is). The
        60 x 100 matrices are too small to gain from threads; on a busy 2-core machine the
        default thread pool made a run about 10x slower in our measurements.

    Returns
    -------
    ShiftRun
    """
    if num_threads is not None:
        num_threads = check_positive_int("num_threads", num_threads)
    with _threads(num_threads):
        return _run_experiment(data, norm=norm, lr=lr, init_scale=init_scale, num_steps=num_steps,
                               batch_size=batch_size, seed=seed, record_every=record_every,
                               record_steps=record_steps, unit=unit, probe_size=probe_size,
                               eval_size=eval_size, bins=bins, hist_range=hist_range, noise=noise,
                               landscape_every=landscape_every, etas=etas, max_loss=max_loss, impl=impl,
                               device=device)


@contextlib.contextmanager
def _threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``; restore the previous value after."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _run_experiment(data, *, norm, lr, init_scale, num_steps, batch_size, seed, record_every, record_steps,
                    unit, probe_size, eval_size, bins, hist_range, noise, landscape_every, etas, max_loss,
                    impl, device) -> ShiftRun:
    from .probes import ActivationProbe
    from .train import evaluate_accuracy, train

    t_start = time.perf_counter()
    check_choice("norm", norm, NORMS)
    lr = _check_float("lr", lr)
    init_scale = _check_float("init_scale", init_scale)
    num_steps = check_positive_int("num_steps", num_steps)
    batch_size = check_positive_int("batch_size", batch_size, minimum=2)
    seed = check_positive_int("seed", seed, minimum=0)
    probe_size = check_positive_int("probe_size", probe_size, minimum=2)
    bins = check_positive_int("bins", bins)
    if record_every is not None:
        record_every = check_positive_int("record_every", record_every)
    if landscape_every is not None:
        landscape_every = check_positive_int("landscape_every", landscape_every)
    if eval_size is not None:
        eval_size = check_positive_int("eval_size", eval_size)
    train_ds, test_ds = _split(data)
    if len(train_ds) < batch_size:
        raise ValueError(f"batch_size must be <= the {len(train_ds)} training examples, got {batch_size}")
    X_probe, _ = _first(test_ds, probe_size)  # (P, C, H, W)
    in_features = int(X_probe[0].numel())
    eval_iter = _loader(_head(test_ds, eval_size), 1000)
    net = build_mlp(norm, in_features=in_features, init_scale=init_scale, seed=seed, noise=noise, impl=impl)
    num_classes = net[-1].out_features
    max_loss = 10 * math.log(num_classes) if max_loss is None else _check_float("max_loss", max_loss)
    device = torch.device(device) if device is not None else torch.device("cpu")
    net.to(device)
    X_probe = X_probe.to(device)
    acts = _act_names(net)
    prefix = net[: list(net._modules).index(acts[-1])]  # everything before the last sigmoid
    last_width = [m for m in prefix.modules() if isinstance(m, nn.Linear)][-1].out_features
    unit = check_positive_int("unit", unit, minimum=0)
    if unit >= last_width:
        raise ValueError(f"unit must be < {last_width} (units of the last hidden layer), got {unit}")

    lo, hi = (float(v) for v in hist_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"hist_range must be (low, high) with finite low < high, got {hist_range!r}")
    # Two catch-all outer bins, so that the mass outside hist_range is counted, not dropped.
    edges = np.r_[-_HUGE, np.linspace(lo, hi, bins + 1), _HUGE]
    probe = ActivationProbe(net, acts, where="input", bins=edges, mode="train")
    rec_steps = _record_steps(num_steps, record_every, record_steps)
    rec_set = set(rec_steps)
    recorded: list[int] = []
    test_acc: list[float] = []
    unit_pct: list[np.ndarray] = []
    losses: list[float] = []
    land_steps = set(range(0, num_steps + 1, landscape_every)) if landscape_every else set()
    land: list[tuple[int, dict]] = []
    land_gen = torch.Generator().manual_seed(10_000 + seed)
    q = torch.tensor([0.15, 0.50, 0.85], dtype=torch.float64)
    etas_lr = [lr * float(e) for e in etas] if land_steps else []
    diverged_at: Optional[int] = None

    def record(step: int) -> None:
        recorded.append(step)
        test_acc.append(evaluate_accuracy(net, eval_iter, device))
        with _preserved(net), torch.no_grad():
            net.train()
            with probe:
                probe.step(step)
                net(X_probe)
        with _preserved(net), torch.no_grad():
            net.train()
            z = prefix(X_probe)[:, unit].double().cpu()  # (P,) inputs of the tracked sigmoid
        unit_pct.append(torch.quantile(z, q).numpy())

    def measure(step: int) -> None:
        idx = torch.randint(len(train_ds), (batch_size,), generator=land_gen).tolist()
        Xb = torch.stack([train_ds[i][0] for i in idx]).to(device)
        yb = torch.as_tensor([int(train_ds[i][1]) for i in idx], device=device)
        land.append((step, gradient_landscape(net, Xb, yb, etas_lr)))

    def callback(step: int, _net: nn.Module, loss: float) -> None:
        nonlocal diverged_at
        losses.append(loss)
        recent = float(np.mean(losses[-10:]))
        if not math.isfinite(loss) or (len(losses) >= 10 and recent > max_loss):
            diverged_at = step
            if math.isfinite(loss):
                record(step)  # the blown-up distributions are worth a look
            raise _Stop
        if step in rec_set:
            record(step)
        if step in land_steps:
            measure(step)
        if step >= num_steps:
            raise _Stop

    record(0)
    if 0 in land_steps:
        measure(0)
    loader = _loader(train_ds, batch_size, generator=torch.Generator().manual_seed(seed))
    num_epochs = math.ceil(num_steps / max(len(loader), 1))
    try:
        train(net, loader, eval_iter, num_epochs, lr, device=device, init=None, progress=False, callback=callback)
    except _Stop:
        pass
    except FloatingPointError:  # train() saw a NaN/inf loss before our callback did
        diverged_at = len(losses) + 1

    names = acts
    layer_pct = np.stack([probe.percentiles(n)[1] for n in names])  # (L, T, 3)
    layer_mean = np.stack([probe.mean(n)[1] for n in names])  # (L, T)
    layer_std = np.stack([probe.std(n)[1] for n in names])  # (L, T)
    dens = np.stack([probe.histograms(n, density=True)[2] for n in names])  # (L, T, B + 2)
    hist = dens[..., 1:-1]  # (L, T, B) inside hist_range
    width = np.diff(edges)
    outside = np.stack([dens[..., 0] * width[0], dens[..., -1] * width[-1]], axis=-1)  # (L, T, 2)
    landscape = None
    if land:
        landscape = {
            "steps": np.array([s for s, _ in land]),
            "etas": np.asarray(etas_lr),
            "loss0": np.array([d["loss0"] for _, d in land]),
            "loss": np.stack([d["loss"] for _, d in land]),
            "grad_norm": np.array([d["grad_norm"] for _, d in land]),
            "grad_change": np.stack([d["grad_change"] for _, d in land]),
            "beta": np.stack([d["beta"] for _, d in land]),
        }
    config = dict(norm=norm, lr=lr, init_scale=init_scale, num_steps=num_steps, batch_size=batch_size,
                  seed=seed, unit=unit, probe_size=len(X_probe), noise=dict(DEFAULT_NOISE if noise is None
                                                                             else noise) if norm == "noisy" else None,
                  max_loss=max_loss, impl=impl)
    info = getattr(data, "info", None)
    return ShiftRun(
        config=config,
        steps=np.asarray(recorded, dtype=np.int64),
        test_acc=np.asarray(test_acc),
        loss=np.asarray(losses),
        unit_percentiles=np.stack(unit_pct),
        layer_percentiles=layer_pct,
        layer_mean=layer_mean,
        layer_std=layer_std,
        edges=edges[1:-1],
        hist=hist,
        outside=outside,
        landscape=landscape,
        diverged_at=diverged_at,
        seconds=time.perf_counter() - t_start,
        dataset=getattr(info, "name", ""),
    )


def percentile_drift(steps: np.ndarray, percentiles: np.ndarray, *, after: float = 0.1) -> dict:
    """How much a (T, 3) array of 15/50/85th percentiles moves during training.

    Only steps >= ``after * steps[-1]`` count (the first moments of training are excluded,
    as in Ioffe & Szegedy's plots, which start at 10k steps). Returns ``median_range``
    (max - min of the median), ``median_jump`` (mean |change| of the median between
    consecutive records) and ``spread_range`` (max - min of the 85th - 15th spread).
    """
    steps = np.asarray(steps, dtype=np.float64)
    p = np.asarray(percentiles, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] != steps.size or steps.size < 2:
        raise ValueError(f"need steps (T,) and percentiles (T, 3) with T >= 2, got {steps.shape} and {p.shape}")
    keep = steps >= after * steps[-1]
    p = p[keep] if keep.sum() >= 2 else p[-2:]
    med, spread = p[:, 1], p[:, 2] - p[:, 0]
    return {"median_range": float(med.max() - med.min()), "median_jump": float(np.abs(np.diff(med)).mean()),
            "spread_range": float(spread.max() - spread.min())}


# ----------------------------------------------------------------------------- the panel
PANEL_LRS = (0.1, 1.0, 10.0)
PANEL_SCALES = (0.5, 1.0, 4.0)
_LAYER_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
_STEP_COLORS = ("#440154", "#31688e", "#35b779", "#c8a800")  # viridis: early (dark) -> late (bright)


def make_panel(
    quick: bool = True,
    *,
    data=None,
    lrs: Sequence[float] = PANEL_LRS,
    init_scales: Sequence[float] = PANEL_SCALES,
    num_steps: Optional[int] = None,
    precompute: bool = True,
    seed: int = 0,
):
    """Slider panel: how the inputs to the sigmoids of every layer evolve during training.

    Controls: learning rate, weight-init scale and BN on/off choose a training run; "layer"
    chooses the hidden layer of the histogram (a redraw only). Left: histograms of that
    layer's sigmoid inputs at four training steps, with the saturated region
    (``|x| > 4``, where ``sigmoid' < 0.018``) shaded and the mass beyond the axis printed at
    its edges; middle: median and 15th-85th percentile band of every layer over training
    (selected layer highlighted); right: test accuracy with and without BN at this learning
    rate and init scale. A run whose loss blows up is drawn up to that step, with a message.

    Parameters
    ----------
    quick : bool, default True
        300 steps per run (2000 otherwise), test accuracy on at most 1000 examples.
    data : Loaders, optional
        Default :func:`load_data`.
    lrs, init_scales : sequences of float
        Slider values; the runs are the grid ``lrs x init_scales x {no BN, BN}``.
    num_steps : int, optional
        Overrides the run length.
    precompute : bool, default True
        Train the whole grid now (seconds in quick mode), so that no slider move retrains:
        every change is a redraw. With False, a run is trained the first time its values
        are chosen and then cached; its sliders update on release (``continuous_update=False``).
    seed : int

    Returns
    -------
    bnbook.widgets.Panel
    """
    from .widgets import Panel, Slider, Toggle

    num_steps = (300 if quick else 2000) if num_steps is None else check_positive_int("num_steps", num_steps)
    lrs = tuple(_check_float("lrs entry", v) for v in lrs)
    init_scales = tuple(_check_float("init_scales entry", v) for v in init_scales)
    if not lrs or not init_scales:
        raise ValueError("lrs and init_scales must each hold at least one value")
    seed = check_positive_int("seed", seed, minimum=0)
    if data is None:
        data = load_data()
    hist_steps = sorted({0, num_steps // 30, num_steps // 6, num_steps})
    runs: dict[tuple[float, float, bool], ShiftRun] = {}

    def get(lr: float, scale: float, bn: bool) -> ShiftRun:
        key = (lr, scale, bn)
        if key not in runs:
            runs[key] = run_experiment(
                data, norm="batch" if bn else "none", lr=lr, init_scale=scale, num_steps=num_steps, seed=seed,
                record_every=max(1, num_steps // 30), record_steps=hist_steps, probe_size=500,
                eval_size=1000 if quick else 5000, bins=48, hist_range=(-12.0, 12.0))
        return runs[key]

    if precompute:
        for lr in lrs:
            for scale in init_scales:
                for bn in (False, True):
                    get(lr, scale, bn)
    first = get(lrs[len(lrs) // 2], init_scales[len(init_scales) // 2], False)
    num_layers = first.hist.shape[0]
    edges = first.edges

    def setup(fig):
        # Drawing cost matters (the target is <= 100 ms per slider move on 2 cores): fixed ticks
        # where possible, coloured text labels instead of legends, titles at a fixed height.
        from matplotlib.ticker import MaxNLocator

        ax_h, ax_p, ax_a = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.2, 0.8]})
        ticks = MaxNLocator(4, steps=[1, 2, 5, 10], integer=True).tick_values(0, num_steps)
        step_ticks = [t for t in ticks if 0 <= t <= num_steps]
        zeros = np.zeros(edges.size - 1)
        stairs = []
        for i, s in enumerate(hist_steps):
            c = _STEP_COLORS[i % len(_STEP_COLORS)]
            stairs.append(ax_h.stairs(zeros, edges, color=c, lw=1.5))
            ax_h.text(0.98, 0.94 - 0.08 * i, f"step {s}", color=c, fontsize=8, ha="right", transform=ax_h.transAxes)
        ax_h.axvspan(edges[0], -4, color="0.92", zorder=0, lw=0)
        ax_h.axvspan(4, edges[-1], color="0.92", zorder=0, lw=0)
        out_lo = ax_h.text(0.01, 0.5, "", transform=ax_h.transAxes, fontsize=8, color="#b00020")
        out_hi = ax_h.text(0.99, 0.3, "", transform=ax_h.transAxes, fontsize=8, color="#b00020", ha="right")
        ax_h.set(xlim=(edges[0], edges[-1]), xticks=np.arange(edges[0], edges[-1] + 1, 4), yticks=[],
                 xlabel="input to sigmoid (grey: saturated, |x| > 4)", ylabel="density")
        ax_h.set_title(" ", y=1.0)
        x = first.steps.astype(float)
        bands, medians = [], []
        for k in range(num_layers):
            c = _LAYER_COLORS[k % len(_LAYER_COLORS)]
            bands.append(ax_p.fill_between(x, 0 * x, 0 * x, color=c, lw=0))
            medians.append(ax_p.plot(x, 0 * x, color=c)[0])
            ax_p.text(0.02 + 0.16 * k, 0.94, f"layer {k + 1}", color=c, fontsize=8, transform=ax_p.transAxes)
        ax_p.set(xticks=step_ticks, xlim=(0, num_steps), xlabel="training step",
                 ylabel="15th / 50th / 85th percentile")
        ax_p.set_title("sigmoid inputs, every layer", y=1.0)
        ax_p.locator_params(axis="y", nbins=5)
        acc = {bn: ax_a.plot([], [], color="black" if bn else "0.5", ls="-" if bn else "--")[0] for bn in (False, True)}
        ax_a.text(0.97, 0.42, "with BN", color="black", fontsize=8, ha="right", transform=ax_a.transAxes)
        ax_a.text(0.97, 0.34, "without BN (dashed)", color="0.4", fontsize=8, ha="right", transform=ax_a.transAxes)
        ax_a.set(xticks=step_ticks, xlim=(0, num_steps), ylim=(0, 1.02), yticks=[0, 0.5, 1],
                 xlabel="training step", ylabel="test accuracy")
        ax_a.set_title("test accuracy", y=1.0)
        for ax in (ax_h, ax_p, ax_a):
            ax.grid(alpha=0.3)
        return dict(ax_h=ax_h, ax_p=ax_p, stairs=stairs, out=(out_lo, out_hi), bands=bands, medians=medians,
                    acc=acc)

    def update(state, lr, init_scale, bn, layer):
        run = get(lr, init_scale, bn)
        li = min(int(layer), num_layers) - 1
        last = run.steps.size - 1
        top = 0.05
        for art, s in zip(state["stairs"], hist_steps):
            hit = np.nonzero(run.steps == s)[0]
            art.set_visible(bool(hit.size))  # steps after a divergence do not exist
            if hit.size:
                h = run.hist[li, hit[0]]
                art.set_data(h)
                top = max(top, float(h.max()))
        below, above = run.outside[li, last]
        state["out"][0].set_text(f"< {edges[0]:g}:\n{below:.0%}" if below >= 0.005 else "")
        state["out"][1].set_text(f"> {edges[-1]:g}:\n{above:.0%}" if above >= 0.005 else "")
        ax_h = state["ax_h"]
        ax_h.set_ylim(0, top * 1.15)
        ax_h.set_title(f"layer {li + 1}: lr {lr:g}, init x{init_scale:g}, {'with' if bn else 'without'} BN",
                       color="#b00020" if run.diverged else "black")
        x = run.steps.astype(float)
        lo, hi = np.inf, -np.inf
        for k, (band, med) in enumerate(zip(state["bands"], state["medians"])):
            p = run.layer_percentiles[k]  # (T, 3)
            band.set_verts([np.column_stack([np.r_[x, x[::-1]], np.r_[p[:, 0], p[::-1, 2]]])])
            med.set_data(x, p[:, 1])
            sel = k == li
            band.set_alpha(0.35 if sel else 0.08)
            med.set_linewidth(2.2 if sel else 0.8)
            lo, hi = min(lo, float(p[:, 0].min())), max(hi, float(p[:, 2].max()))
        pad = 0.05 * max(hi - lo, 1e-3)
        state["ax_p"].set_ylim(lo - pad, hi + pad)
        for b, line in state["acc"].items():
            r = runs.get((lr, init_scale, b))
            line.set_data(([], []) if r is None else (r.steps, r.test_acc))
            line.set_linewidth(2.4 if b == bn else 1.0)
        p = run.layer_percentiles[li, last]
        text = (f"layer {li + 1}, step {int(run.steps[last])}: percentiles 15/50/85 = "
                f"{p[0]:.2f} / {p[1]:.2f} / {p[2]:.2f}; test accuracy {run.final_acc:.2f}")
        if run.diverged:
            text = (f"Diverged at step {run.diverged_at}: the loss exceeded {run.config['max_loss']:.0f} "
                    f"(10x that of guessing); lower the learning rate or the init scale. " + text)
        return text

    controls = {
        "lr": Slider("learning rate", lrs, lrs[len(lrs) // 2], continuous_update=False),
        "init_scale": Slider("init scale", init_scales, init_scales[len(init_scales) // 2], continuous_update=False),
        "bn": Toggle("batch norm", False),
        "layer": Slider("layer", tuple(range(1, num_layers + 1)), num_layers),
    }
    return Panel(controls, setup, update, figsize=(11, 3.4), dpi=80,
                 title="Inputs to the sigmoids of the 3x100 MLP during training")
