"""Karpathy-style training diagnostics: activation and gradient histograms, update-to-data ratios.

Part of chapter 2, "Batch normalization from scratch" (``notebooks/02_batch_norm_from_scratch.ipynb``,
section 8), after A. Karpathy's "Building makemore, part 3" lecture: train a deep MLP with and
without BN and watch, per hidden layer,

* the distribution of the nonlinearity's outputs (saturated sigmoids, dead ReLUs);
* the distribution of the gradient of the loss with respect to those outputs;
* the update-to-data ratio ``||lr * grad W|| / ||W||`` of every weight matrix (log10), whose
  healthy order of magnitude Karpathy puts near ``1e-3`` per step.

:func:`record_activations` is a context manager (forward hooks plus tensor hooks for the
gradients) that removes its hooks on exit; :func:`run_diagnostics` is the whole experiment.
These helpers would also serve later chapters (they should move to :mod:`bnbook.probes`)::

    >>> import torch
    >>> net = mlp("relu", norm="batch", depth=2, hidden=8, in_features=4, num_classes=3)
    >>> X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    >>> with record_activations(net) as rec:
    ...     torch.nn.functional.cross_entropy(net(X), y).backward()
    >>> rec.values["act1"].shape, rec.grads["act2"].shape
    ((16, 8), (16, 8))
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from bnbook._impl import layers_module
from bnbook._validate import check_choice, check_positive_int, check_real
from bnbook.loaders import batch_indices

__all__ = [
    "ACTIVATIONS",
    "mlp",
    "Recording",
    "record_activations",
    "update_ratios",
    "DiagnosticRun",
    "run_diagnostics",
    "saturation",
]

ACTIVATIONS = ("sigmoid", "relu")


def mlp(
    activation: str = "relu",
    norm: Optional[str] = None,
    *,
    depth: int = 5,
    hidden: int = 100,
    in_features: int = 784,
    num_classes: int = 10,
    impl: str = "bnbook",
) -> nn.Sequential:
    """``flatten``, ``depth`` x (``fc{i}`` - [``bn{i}``] - ``act{i}``), ``fc{depth+1}``.

    Parameters
    ----------
    activation : {"sigmoid", "relu"}
    norm : None or "batch"
        ``"batch"`` puts a ``BatchNorm1d`` between each hidden linear layer and its
        nonlinearity, as Ioffe & Szegedy do.
    depth, hidden, in_features, num_classes : int
    impl : {"bnbook", "torch"}
        Source of ``BatchNorm1d``.

    Returns
    -------
    nn.Sequential
        Maps ``(N, ...)`` inputs with ``in_features`` values to ``(N, num_classes)`` logits;
        PyTorch's default initialization.
    """
    check_choice("activation", activation, ACTIVATIONS)
    if norm is not None:
        check_choice("norm", norm, ("batch",))
    depth = check_positive_int("depth", depth)
    hidden = check_positive_int("hidden", hidden)
    width = check_positive_int("in_features", in_features)
    num_classes = check_positive_int("num_classes", num_classes)
    lib = layers_module(impl)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for i in range(1, depth + 1):
        layers[f"fc{i}"] = nn.Linear(width, hidden)
        if norm == "batch":
            layers[f"bn{i}"] = lib.BatchNorm1d(hidden)
        layers[f"act{i}"] = nn.Sigmoid() if activation == "sigmoid" else nn.ReLU()
        width = hidden
    layers[f"fc{depth + 1}"] = nn.Linear(width, num_classes)
    return nn.Sequential(layers)


@dataclasses.dataclass
class Recording:
    """What :func:`record_activations` captured in the last forward/backward pass.

    ``values[name]`` is the module's output, ``grads[name]`` the gradient of the loss with
    respect to it (filled in by ``backward``); both NumPy float32 arrays of the output's shape.
    """

    values: dict = dataclasses.field(default_factory=dict)
    grads: dict = dataclasses.field(default_factory=dict)


@contextlib.contextmanager
def record_activations(net: nn.Module, names: Optional[Sequence[str]] = None) -> Iterator[Recording]:
    """Capture the outputs of the named submodules and the gradients flowing into them.

    Parameters
    ----------
    net : nn.Module
    names : list of str, optional
        Submodule names as in ``net.named_modules()``; default every ``nn.Sigmoid`` and
        ``nn.ReLU``.

    Yields
    ------
    Recording
        Overwritten by every forward (and backward) pass inside the block.  The hooks are
        removed on exit, also when an exception escapes.
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
    modules = dict(net.named_modules())
    if names is None:
        names = [n for n, m in modules.items() if isinstance(m, (nn.Sigmoid, nn.ReLU))]
    missing = [n for n in names if n not in modules]
    if missing or not names:
        raise ValueError(f"no submodule(s) {missing} in net; it has {[n for n in modules if n]}")
    rec = Recording()

    def hook(name):
        def forward_hook(module, args, output):
            rec.values[name] = output.detach().cpu().numpy()
            if output.requires_grad:
                output.register_hook(lambda g: rec.grads.__setitem__(name, g.detach().cpu().numpy()))

        return forward_hook

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        yield rec
    finally:
        for h in handles:
            h.remove()


def update_ratios(weights: Sequence[torch.Tensor], lr: float) -> np.ndarray:
    """``log10(||lr * W.grad|| / ||W||)`` for each weight (plain SGD's update over the data).

    Returns
    -------
    ndarray, shape (len(weights),)
    """
    lr = check_real("lr", lr, low=0.0, low_open=True)
    out = []
    for w in weights:
        if w.grad is None:
            raise ValueError("update_ratios: a weight has no gradient; call backward() first")
        out.append(float(torch.log10(lr * w.grad.norm() / w.detach().norm())))
    return np.array(out)


def saturation(values: np.ndarray, activation: str) -> float:
    """Fraction of saturated units: sigmoid outputs within 0.03 of 0 or 1; ReLU outputs == 0."""
    check_choice("activation", activation, ACTIVATIONS)
    v = np.asarray(values)
    if activation == "sigmoid":
        return float(np.mean((v < 0.03) | (v > 0.97)))
    return float(np.mean(v == 0))


@dataclasses.dataclass
class DiagnosticRun:
    """One training run of :func:`run_diagnostics`.

    Attributes
    ----------
    layers : list of str
        The hidden nonlinearities ``act1 .. act{depth}``.
    log10_ratio : ndarray, shape (steps, depth + 1)
        Update-to-data ratio of ``fc1 .. fc{depth+1}`` at every step.
    snapshots : dict
        ``step -> Recording`` at the recorded steps (``values``/``grads`` of each ``act``).
    test_acc : float
        Accuracy on the test set after training (eval mode).
    """

    activation: str
    norm: Optional[str]
    seed: int
    layers: list
    log10_ratio: np.ndarray
    snapshots: dict
    test_acc: float

    def grad_std(self, step: int) -> np.ndarray:
        """Standard deviation of dL/d(act output) per hidden layer at ``step``, shape (depth,)."""
        return np.array([self.snapshots[step].grads[n].std() for n in self.layers])

    def saturation(self, step: int) -> np.ndarray:
        """:func:`saturation` per hidden layer at ``step``, shape (depth,)."""
        return np.array([saturation(self.snapshots[step].values[n], self.activation) for n in self.layers])


def run_diagnostics(
    activation: str,
    norm: Optional[str],
    X: torch.Tensor,
    y: torch.Tensor,
    X_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 0.1,
    depth: int = 5,
    hidden: int = 100,
    seed: int = 0,
    record_at: Sequence[int] = (0,),
) -> DiagnosticRun:
    """Train :func:`mlp` with plain SGD and record the diagnostics.

    Parameters
    ----------
    activation, norm
        As in :func:`mlp`.
    X, y : Tensor, shapes (N, ...) and (N,)
        Training images and labels (batches drawn by :func:`bnbook.loaders.batch_indices`).
    X_test, y_test : Tensor
        For the final test accuracy.
    steps, batch_size : int
    lr : float
    depth, hidden : int
    seed : int
        Seeds the initialization (``torch.random.fork_rng``: the global RNG is left as it
        was) and the batch order.
    record_at : sequence of int
        Steps (0 = the first batch, before any update) whose activations and gradients are
        kept; negative values count from the end (-1 = the last step).

    Returns
    -------
    DiagnosticRun
    """
    steps = check_positive_int("steps", steps)
    seed = check_positive_int("seed", seed, minimum=0)
    lr = check_real("lr", lr, low=0.0, low_open=True)
    if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)) or X.shape[0] != y.shape[0]:
        raise ValueError("X and y must be tensors with the same number of rows (examples)")
    wanted = set()
    for s in record_at:
        s = int(s) + steps if int(s) < 0 else int(s)
        if not 0 <= s < steps:
            raise ValueError(f"record_at: step {s} is outside 0 .. {steps - 1}")
        wanted.add(s)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = mlp(activation, norm, depth=depth, hidden=hidden, in_features=X[0].numel())
    weights = [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
    layers = [f"act{i}" for i in range(1, depth + 1)]
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    idx = batch_indices(X.shape[0], batch_size, steps, seed=seed)  # (steps, B)
    ratios, snapshots = np.empty((steps, len(weights))), {}
    net.train()
    with record_activations(net, layers) as rec:
        for t, rows in enumerate(idx):
            loss = nn.functional.cross_entropy(net(X[rows]), y[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            ratios[t] = update_ratios(weights, lr)  # before the step: W is the data updated
            opt.step()
            if t in wanted:
                snapshots[t] = Recording(dict(rec.values), dict(rec.grads))
    net.eval()
    with torch.no_grad():
        test_acc = float((net(X_test).argmax(dim=1) == y_test).float().mean())
    return DiagnosticRun(activation, norm, seed, layers, ratios, snapshots, test_acc)
