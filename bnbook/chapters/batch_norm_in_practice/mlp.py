"""Small MLPs with BN before, after or without the activation, trained fast on in-memory data.

Part of chapter 3, "Batch norm in practice" (``notebooks/03_batch_norm_in_practice.ipynb``):
sections 2 (where BN goes), 5 (the init-scale grid of *Deep Learning from Scratch*, the claims
ledger) and the panel of section 8 all train :func:`make_mlp` with :func:`fit_mlp`.  Every run
draws its initialization and its mini-batches from private generators, so a run is fixed by
its arguments, whatever ran before it; runs use one CPU thread (the book's machine has two cores).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn

from bnbook._impl import layers_module
from bnbook._validate import check_choice, check_positive_int, check_probability, check_real
from bnbook.loaders import batch_indices, datasets_of, in_memory
from bnbook.state import num_threads

__all__ = ["POSITIONS", "Tensors", "as_tensors", "make_mlp", "init_", "MLPRun", "train_net", "fit_mlp", "accuracy"]

#: Where a BN layer can sit in each hidden block: none, before the activation (Ioffe & Szegedy), after it.
POSITIONS = ("none", "before", "after")


@dataclass(frozen=True)
class Tensors:
    """A data set held as four tensors: ``X_train (N, D)``, ``y_train (N,)``, ``X_test (M, D)``, ``y_test (M,)``."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    name: str = "data"

    @property
    def num_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def num_classes(self) -> int:
        return int(torch.cat([self.y_train, self.y_test]).max()) + 1

    def head(self, n_train: Optional[int] = None, n_test: Optional[int] = None) -> Tensors:
        """The first ``n_train`` training and ``n_test`` test examples (all if None)."""
        return Tensors(self.X_train[:n_train], self.y_train[:n_train], self.X_test[:n_test],
                       self.y_test[:n_test], self.name)  # fmt: skip


def as_tensors(loaders, *, flatten: bool = True, name: Optional[str] = None) -> Tensors:
    """The training and test sets of :func:`bnbook.data.load`'s loaders as tensors.

    ``flatten=True`` gives ``(N, C*H*W)`` rows (for an MLP); otherwise ``(N, C, H, W)``.
    """
    train, test = (in_memory(ds) for ds in datasets_of(loaders))
    (Xtr, ytr), (Xte, yte) = train.tensors, test.tensors
    if flatten:
        Xtr, Xte = Xtr.flatten(1), Xte.flatten(1)
    info = getattr(loaders, "info", None)
    return Tensors(Xtr, ytr, Xte, yte, name or (info.name if info is not None else "data"))


def make_mlp(
    in_features: int,
    num_classes: int,
    *,
    depth: int = 2,
    width: int = 100,
    bn: str = "before",
    activation: str = "relu",
    dropout: float = 0.0,
    bias: bool = True,
    bn_momentum: Optional[float] = 0.1,
    impl: str = "torch",
) -> nn.Sequential:
    """``flatten``, ``depth`` blocks ``fc{i}`` + ``act{i}`` (+ ``bn{i}``, ``drop{i}``), then ``fc{depth+1}``.

    ``bn="before"``: ``fc - bn - act`` (Ioffe & Szegedy 2015); ``"after"``: ``fc - act - bn``;
    ``"none"``: no BN.  ``dropout > 0`` adds ``nn.Dropout`` after each block.  ``bias=False``
    drops the bias of the linear layers that feed a BN layer directly (``bn="before"``).
    ``bn_momentum`` is every BN layer's ``momentum`` (None: cumulative average).
    """
    in_features = check_positive_int("in_features", in_features)
    num_classes = check_positive_int("num_classes", num_classes)
    depth = check_positive_int("depth", depth)
    width = check_positive_int("width", width)
    check_choice("bn", bn, POSITIONS)
    check_choice("activation", activation, ("relu", "sigmoid"))
    dropout = check_probability("dropout", dropout)
    lib = layers_module(impl)
    act = nn.ReLU if activation == "relu" else nn.Sigmoid
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    fan_in = in_features
    for i in range(1, depth + 1):
        layers[f"fc{i}"] = nn.Linear(fan_in, width, bias=bias or bn != "before")
        if bn == "before":
            layers[f"bn{i}"] = lib.BatchNorm1d(width, momentum=bn_momentum)
        layers[f"act{i}"] = act()
        if bn == "after":
            layers[f"bn{i}"] = lib.BatchNorm1d(width, momentum=bn_momentum)
        if dropout > 0:
            layers[f"drop{i}"] = nn.Dropout(dropout)
        fan_in = width
    layers[f"fc{depth + 1}"] = nn.Linear(fan_in, num_classes)
    return nn.Sequential(layers)


def init_(net: nn.Module, init, generator: torch.Generator) -> nn.Module:
    """Re-initialize every Linear/Conv layer of ``net`` from ``generator``; return ``net``.

    ``init=None``: torch.nn's default (Kaiming-uniform with ``a = sqrt(5)``, biases
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``); ``"xavier"``: Xavier-uniform weights, zero biases
    (d2l); a float ``s``: weights ``N(0, s^2)``, zero biases (*Deep Learning from Scratch*).
    """
    if init is not None and init != "xavier":
        init = check_real("init", init, low=0.0, low_open=True)
    with torch.no_grad():
        for m in net.modules():
            if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                continue
            fan_in = m.weight[0].numel()
            if init is None:
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    m.bias.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=generator)
                continue
            if init == "xavier":
                nn.init.xavier_uniform_(m.weight, generator=generator)
            else:
                m.weight.normal_(0.0, init, generator=generator)
            if m.bias is not None:
                m.bias.zero_()
    return net


@torch.no_grad()
def accuracy(net: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Eval-mode accuracy of ``net`` on ``X (N, ...)``, ``y (N,)``; NaN logits count as wrong."""
    was = net.training
    net.eval()
    correct = 0
    for i in range(0, len(X), batch_size):
        logits = net(X[i : i + batch_size])  # (B, num_classes)
        ok = logits.argmax(1) == y[i : i + batch_size]
        correct += int((ok & torch.isfinite(logits).all(1)).sum())
    net.train(was)
    return correct / len(X)


@dataclass
class MLPRun:
    """What :func:`fit_mlp` measured: the loss of every step, final accuracies, optional histograms."""

    config: dict
    loss: np.ndarray  # (steps_done,) mini-batch loss of every step
    train_acc: float
    test_acc: float
    diverged_at: Optional[int] = None  # the step whose loss was not finite (None: did not diverge)
    hist: dict = field(default_factory=dict)  # {layer name: (num_hist_steps, bins) counts}
    hist_steps: tuple = ()
    edges: Optional[np.ndarray] = None  # (bins + 1,) bin edges of the histograms (log10 |x|)
    net: Optional[nn.Module] = field(default=None, repr=False)  # the trained network

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def final_loss(self, last: int = 50) -> float:
        """Mean mini-batch loss over the last ``last`` steps (inf if training diverged)."""
        return float("inf") if self.diverged else float(self.loss[-last:].mean())


def fit_mlp(
    data: Tensors,
    *,
    bn: str = "before",
    depth: int = 2,
    width: int = 100,
    init_std: Optional[float] = None,
    dropout: float = 0.0,
    activation: str = "relu",
    bn_momentum: Optional[float] = 0.1,
    **train_kwargs,
) -> MLPRun:
    """Build ``make_mlp(..., bn=bn)`` (weights ``N(0, init_std^2)``, or torch's init if None) and :func:`train_net` it.

    ``train_kwargs`` go to :func:`train_net` (``lr``, ``steps``, ``batch_size``, ``seed``, ...);
    the run's ``config`` records every argument.
    """
    with torch.random.fork_rng(devices=[]):  # construction draws torch's default init; train_net redraws it
        net = make_mlp(data.num_features, data.num_classes, depth=depth, width=width, bn=bn,
                       activation=activation, dropout=dropout, bn_momentum=bn_momentum)  # fmt: skip
    run = train_net(net, data, init=init_std, **train_kwargs)
    run.config.update(bn=bn, depth=depth, width=width, init_std=init_std, dropout=dropout, activation=activation,
                      bn_momentum=bn_momentum)  # fmt: skip
    return run


def train_net(
    net: nn.Module,
    data: Tensors,
    *,
    lr: float = 0.1,
    steps: int = 500,
    batch_size: int = 64,
    seed: int = 0,
    init=None,
    optimizer: str = "sgd",
    weight_decay: float = 0.0,
    hist_steps: tuple = (),
    hist_edges: Optional[np.ndarray] = None,
    max_loss: float = 1e3,
) -> MLPRun:
    """Initialize ``net`` from ``seed`` and train it with cross-entropy on mini-batches of ``data``.

    Parameters
    ----------
    net : nn.Module
        Maps ``data.X_train[idx]`` (``(B, ...)``) to ``(B, num_classes)`` logits; trained in place.
    data : Tensors
    lr, steps, batch_size, seed
        Learning rate, optimizer steps, examples per step, and the seed of the initialization, of
        the batch order (epochs without repeats, :func:`bnbook.loaders.batch_indices`) and of
        dropout.  The global RNG is left as it was.
    init : None, "xavier" or float
        See :func:`init_`.
    optimizer : {"sgd", "adam"}
    weight_decay : float
        L2 penalty of the optimizer (on every parameter, as ``torch.optim`` applies it).
    hist_steps : tuple of int
        Steps (0 = before training) at which to record histograms of ``log10 |x|`` of the
        input of every child module named ``act*``, on the first 500 training examples.
    hist_edges : array, optional
        Bin edges for those histograms (default 44 bins over [-18, 4]).
    max_loss : float
        A mini-batch loss above this (or not finite) counts as diverged and stops the run.

    Returns
    -------
    MLPRun
        ``loss`` of every step done; train and test accuracy in eval mode after training.
    """
    check_choice("optimizer", optimizer, ("sgd", "adam"))
    lr = check_real("lr", lr, low=0.0, low_open=True)
    weight_decay = check_real("weight_decay", weight_decay, low=0.0)
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    seed = check_positive_int("seed", seed, minimum=0)
    max_loss = check_real("max_loss", max_loss, low=0.0, low_open=True)
    config = dict(lr=lr, steps=steps, batch_size=batch_size, seed=seed, init=init, optimizer=optimizer,
                  weight_decay=weight_decay)  # fmt: skip
    edges = np.linspace(-18, 4, 45) if hist_edges is None else np.asarray(hist_edges, dtype=float)
    with num_threads(1):
        init_(net, init, torch.Generator().manual_seed(seed))
        opt_cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
        opt = opt_cls(net.parameters(), lr=lr, weight_decay=weight_decay)
        order = batch_indices(len(data.X_train), batch_size, steps, seed=seed)  # (steps, batch_size)
        acts = [m for n, m in net.named_children() if n.startswith("act")]
        hist = {n: [] for n, _ in net.named_children() if n.startswith("act")} if hist_steps else {}
        losses = np.full(steps, np.nan)
        diverged_at = None
        rng_state = torch.get_rng_state()
        torch.manual_seed(seed)  # nn.Dropout draws from the global generator; restored below
        try:
            net.train()
            for step in range(steps + 1):
                if step in hist_steps:
                    _record(net, acts, data.X_train[:500], hist, edges)
                if step == steps:
                    break
                idx = order[step]
                loss = nn.functional.cross_entropy(net(data.X_train[idx]), data.y_train[idx])
                value = loss.item()
                if not math.isfinite(value) or value > max_loss:
                    diverged_at = step + 1
                    break
                losses[step] = value
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        finally:
            torch.set_rng_state(rng_state)
        done = steps if diverged_at is None else diverged_at - 1
        train_acc = accuracy(net, data.X_train, data.y_train)
        test_acc = accuracy(net, data.X_test, data.y_test)
    hist = {k: np.array(v) for k, v in hist.items()}
    return MLPRun(config, losses[:done], train_acc, test_acc, diverged_at, hist,
                  tuple(s for s in hist_steps if s <= done), edges if hist_steps else None, net)  # fmt: skip


@torch.no_grad()
def _record(net: nn.Module, acts: list, X: torch.Tensor, hist: dict, edges: np.ndarray) -> None:
    """Append the histogram of log10 |input| of every activation module (training-mode forward, state kept)."""
    captured = []
    handles = [a.register_forward_hook(lambda m, inp, out: captured.append(inp[0])) for a in acts]
    saved = [b.clone() for b in net.buffers()]
    try:
        net(X)
    finally:
        for h in handles:
            h.remove()
        for b, s in zip(net.buffers(), saved):
            b.copy_(s)
    for name, x in zip(hist, captured):
        mag = torch.log10(x.abs().clamp_min(1e-30)).clamp(edges[0], edges[-1]).flatten().numpy()
        hist[name].append(np.histogram(mag, bins=edges)[0])
