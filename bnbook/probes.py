"""Forward-hook probes that record activation statistics during training.

Introduced in chapter 1, "Internal covariate shift"
(``notebooks/01_internal_covariate_shift.ipynb``), which reproduces Ioffe & Szegedy (2015),
Fig. 1(b, c): the 15th, 50th and 85th percentiles of the input to a sigmoid
over training, with and without batch normalization.

An :class:`ActivationProbe` is a context manager: it registers forward hooks on entry and
removes them on exit (also when an exception escapes the block), so a network is never left
with stray hooks. Statistics are computed on the fly from detached tensors and stored as
NumPy arrays; no activation tensor is kept alive::

    net = models.ioffe_mlp(norm="batch")
    with ActivationProbe(net, ["act3"], where="input", every=50) as probe:
        train(net, train_iter, test_iter, num_epochs=5, lr=0.5)
    steps, p = probe.percentiles("act3")  # (T,), (T, 3): 15th, 50th, 85th percentile

:func:`layer_output` captures one submodule's output for one batch (chapter 2's explorer uses
it for the inputs of a BN layer).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from numbers import Real
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from ._validate import check_choice, check_positive_int

__all__ = ["ActivationProbe", "layer_output"]

ModulesArg = Union[None, str, Sequence[str], type, tuple]

# torch.quantile refuses inputs with more than 2**24 elements.
_QUANTILE_MAX = 2**24


class _Record:
    """Statistics of one module, one entry per recorded step."""

    def __init__(self):
        self.steps: list[int] = []
        self.mean: list[float] = []
        self.std: list[float] = []
        self.percentiles: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.numel: list[int] = []


class ActivationProbe:
    """Record mean, std, percentiles and histograms of module inputs or outputs.

    Parameters
    ----------
    net : nn.Module
        The network to probe. Its forward passes are counted to number the steps.
    modules : None, str, list of str, type or tuple of types
        Which submodules to hook: ``None`` = every leaf module; names as in
        ``net.named_modules()`` (e.g. ``["act1", "act3"]``); or module classes, e.g.
        ``(nn.Sigmoid,)`` for every sigmoid.
    where : {"output", "input"}
        Record the module's output or its (first) input.
    percentiles : sequence of float
        Percentiles in [0, 100] (NumPy's "linear" interpolation). Default: Ioffe & Szegedy's
        15th, 50th and 85th.
    bins : None, int or sequence of float
        Histogram bins: a number of equal-width bins over ``range``, or increasing bin edges.
        The same bins are used at every step, so histograms are comparable over training.
        ``None`` records no histograms.
    range : (float, float), optional
        ``(low, high)`` of the bins when ``bins`` is an int (required then).
    every : int, optional
        Record only forward passes whose step number is a multiple of ``every``.
    mode : {"train", "eval", "any"}
        Which forward passes of ``net`` count as steps (judged by ``net.training``): with the
        default ``"train"`` the evaluation passes of :func:`bnbook.train.train` are ignored and
        step ``s`` is the forward pass after ``s`` optimizer updates.

    Notes
    -----
    Steps are numbered 0, 1, 2, ... by counting the counted forward passes of ``net``;
    :meth:`step` sets the number of the next one. Set ``probe.active = False`` to pause
    recording (the counter keeps running). A module called several times in one forward pass
    is recorded on its first call. ``std`` is the population standard deviation (``ddof=0``).
    """

    def __init__(
        self,
        net: nn.Module,
        modules: ModulesArg = None,
        *,
        where: str = "output",
        percentiles: Sequence[float] = (15, 50, 85),
        bins: Union[None, int, Sequence[float]] = None,
        range: Optional[tuple[float, float]] = None,  # noqa: A002 - mirrors numpy.histogram
        every: Optional[int] = None,
        mode: str = "train",
    ):
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
        self.net = net
        self.where = check_choice("where", where, ("output", "input"))
        self.mode = check_choice("mode", mode, ("train", "eval", "any"))
        self.every = None if every is None else check_positive_int("every", every)
        self.q = self._check_percentiles(percentiles)
        self.edges = self._check_bins(bins, range)
        self.modules = self._select(net, modules)  # name -> module
        self.active = True
        self._next_step = 0
        self._current: Optional[int] = None  # step being recorded, None if not recording
        self._depth = 0  # nesting depth of calls of the root module
        self._done: set[str] = set()
        self._handles: list = []
        self._records = {name: _Record() for name in self.modules}

    # ---- argument checks -------------------------------------------------------------
    @staticmethod
    def _check_percentiles(percentiles) -> np.ndarray:
        q = np.asarray(percentiles, dtype=np.float64).ravel()
        if q.size == 0 or not np.all((q >= 0) & (q <= 100)):  # also rejects NaN
            raise ValueError(f"percentiles must be a non-empty sequence in [0, 100], got {percentiles!r}")
        return q

    @staticmethod
    def _check_bins(bins, range) -> Optional[np.ndarray]:
        if bins is None:
            if range is not None:
                raise ValueError("range is only used with bins=int; pass bins too")
            return None
        if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
            bins = check_positive_int("bins", int(bins))
            if range is None:
                raise ValueError("bins=int needs range=(low, high) so that all steps share the same bins")
            if len(range) != 2 or not all(isinstance(v, Real) and math.isfinite(v) for v in range):
                raise ValueError(f"range must be a pair of finite floats (low, high), got {range!r}")
            low, high = float(range[0]), float(range[1])
            if not low < high:
                raise ValueError(f"range must have low < high, got {range!r}")
            return np.linspace(low, high, bins + 1)
        if range is not None:
            raise ValueError("range must be None when bins is a sequence of edges")
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or not np.all(np.diff(edges) > 0):
            raise ValueError(f"bins must be an int or >= 2 strictly increasing finite edges, got {bins!r}")
        return edges

    @staticmethod
    def _select(net: nn.Module, modules) -> dict[str, nn.Module]:
        named = dict(net.named_modules())
        named.pop("", None)  # the root is counted, not hooked
        if modules is None:
            selected = {n: m for n, m in named.items() if not any(True for _ in m.children())}
            if not selected:
                raise ValueError("net has no submodules to probe")
            return selected
        if isinstance(modules, type) or (
            isinstance(modules, tuple) and modules and all(isinstance(t, type) for t in modules)
        ):
            selected = {n: m for n, m in named.items() if isinstance(m, modules)}
            if not selected:
                kinds = sorted({type(m).__name__ for m in named.values()})
                raise ValueError(f"no module of type {modules!r} in net; its module types are {kinds}")
            return selected
        if isinstance(modules, str):
            modules = [modules]
        names = list(modules)
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError(
                f"modules must be None, a name, a list of names, or a module class / tuple of classes, got {modules!r}"
            )
        unknown = [n for n in names if n not in named]
        if unknown:
            raise ValueError(f"unknown module name(s) {unknown}; available: {list(named)}")
        return {n: named[n] for n in names}

    # ---- hooks -----------------------------------------------------------------------
    def __enter__(self) -> ActivationProbe:
        if self._handles:
            raise RuntimeError("this ActivationProbe is already attached (nested `with`?)")
        self._handles.append(self.net.register_forward_pre_hook(self._begin))
        self._handles.append(self.net.register_forward_hook(self._end, always_call=True))
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove all hooks (called automatically at the end of the ``with`` block)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._current = None
        self._depth = 0

    @property
    def attached(self) -> bool:
        """True while the hooks are registered."""
        return bool(self._handles)

    def step(self, step: int) -> None:
        """Number the next counted forward pass ``step`` (later ones ``step + 1``, ...)."""
        self._next_step = check_positive_int("step", step, minimum=0)

    def _counts(self) -> bool:
        if self.mode == "any":
            return True
        return self.net.training == (self.mode == "train")

    def _begin(self, module, args) -> None:
        self._depth += 1
        if self._depth > 1 or not self._counts():
            return  # a nested call of the root, or a pass of the wrong mode
        step = self._next_step
        self._next_step += 1
        if self.active and (self.every is None or step % self.every == 0):
            self._current = step
            self._done.clear()

    def _end(self, module, args, output) -> None:
        # registered with always_call=True: runs even if the forward pass raised
        self._depth = max(self._depth - 1, 0)
        if self._depth == 0:
            self._current = None

    def _make_hook(self, name: str):
        def hook(module, args, output):
            if self._current is None or name in self._done:
                return
            if self.where == "input":
                if not args:
                    raise TypeError(f"ActivationProbe: module {name!r} was called without a positional input")
                x = args[0]
            else:
                x = output
            if isinstance(x, (tuple, list)) and x:
                x = x[0]
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"ActivationProbe: the {self.where} of module {name!r} is not a tensor")
            self._done.add(name)
            self._store(name, self._current, x)

        return hook

    def _store(self, name: str, step: int, x: torch.Tensor) -> None:
        with torch.no_grad():
            x = x.detach().reshape(-1)
            if not x.is_floating_point():
                x = x.float()
            x = x.double() if x.dtype == torch.float64 else x.float()
            rec = self._records[name]
            rec.steps.append(step)
            rec.numel.append(x.numel())
            rec.mean.append(float(x.mean()))
            rec.std.append(float(x.std(correction=0)) if x.numel() > 0 else math.nan)
            if x.numel() == 0:
                rec.percentiles.append(np.full(self.q.shape, np.nan))
            elif x.numel() <= _QUANTILE_MAX:
                q = torch.as_tensor(self.q / 100.0, dtype=x.dtype, device=x.device)
                rec.percentiles.append(torch.quantile(x, q).cpu().double().numpy())
            else:
                rec.percentiles.append(np.percentile(x.cpu().numpy(), self.q))
            if self.edges is not None:
                rec.counts.append(self._histogram(x))

    def _histogram(self, x: torch.Tensor) -> np.ndarray:
        """Counts per bin with NumPy's convention (last bin closed); out-of-range values dropped."""
        edges = torch.as_tensor(self.edges, dtype=x.dtype, device=x.device)
        num_bins = edges.numel() - 1
        idx = torch.bucketize(x, edges, right=True) - 1  # bin i holds edges[i] <= x < edges[i+1]
        idx = torch.where(x == edges[-1], torch.full_like(idx, num_bins - 1), idx)
        idx = idx[(idx >= 0) & (idx < num_bins)]
        return torch.bincount(idx, minlength=num_bins).cpu().numpy().astype(np.int64)

    # ---- results ---------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Names of the probed modules."""
        return list(self.modules)

    def _record(self, name: str) -> _Record:
        if name not in self._records:
            raise ValueError(f"module {name!r} is not probed; probed modules: {self.names}")
        return self._records[name]

    def steps(self, name: str) -> np.ndarray:
        """Recorded step numbers of module ``name``, shape ``(T,)``."""
        return np.asarray(self._record(name).steps, dtype=np.int64)

    def mean(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps (T,), mean (T,))`` of the recorded values."""
        rec = self._record(name)
        return self.steps(name), np.asarray(rec.mean, dtype=np.float64)

    def std(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps (T,), std (T,))``, population standard deviation."""
        rec = self._record(name)
        return self.steps(name), np.asarray(rec.std, dtype=np.float64)

    def percentiles(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps (T,), values (T, P))`` for the ``P`` requested percentiles."""
        rec = self._record(name)
        values = np.stack(rec.percentiles) if rec.percentiles else np.empty((0, self.q.size))
        return self.steps(name), values

    def histograms(self, name: str, *, density: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps (T,), edges (B + 1,), values (T, B))``.

        ``values`` are counts, or with ``density=True`` counts / (numel * bin width), so that a
        row integrates to the fraction of values inside the bins.
        """
        if self.edges is None:
            raise ValueError("no histograms recorded; create the probe with bins=... (and range=...)")
        rec = self._record(name)
        num_bins = self.edges.size - 1
        counts = np.stack(rec.counts) if rec.counts else np.empty((0, num_bins), dtype=np.int64)
        if not density:
            return self.steps(name), self.edges.copy(), counts
        numel = np.asarray(rec.numel, dtype=np.float64).reshape(-1, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = counts / (numel * np.diff(self.edges))
        return self.steps(name), self.edges.copy(), values

    def clear(self) -> None:
        """Forget all recorded statistics (the step counter keeps running)."""
        self._records = {name: _Record() for name in self.modules}

    def __repr__(self) -> str:
        state = "attached" if self.attached else "detached"
        return (
            f"ActivationProbe({len(self.modules)} modules, where={self.where!r}, "
            f"every={self.every}, mode={self.mode!r}, {state})"
        )


def layer_output(net: nn.Module, X: torch.Tensor, layer: str, *, training: bool = False) -> torch.Tensor:
    """Output of the submodule ``layer`` of ``net`` for the batch ``X``, detached.

    Parameters
    ----------
    net : nn.Module
        E.g. ``bnbook.models.lenet(...)``, whose ``fc1`` output is the input of ``bn3``.
    X : Tensor, shape (N, ...)
        Input batch (moved to the device of ``net``).
    layer : str
        Name of the submodule as in ``net.named_modules()``.
    training : bool
        Forward pass in training mode (BN layers before ``layer`` use the statistics of
        ``X``).  A deep copy of ``net`` runs then, so the caller's running statistics are
        untouched.  In eval mode (default) ``net`` itself runs; every submodule gets its
        ``training`` flag back afterwards.

    Returns
    -------
    Tensor
        The output of ``layer``, on the device of ``net``.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    >>> layer_output(net, torch.randn(5, 3), "0").shape
    torch.Size([5, 4])
    """
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be an nn.Module, got {type(net).__name__}")
    if not isinstance(X, torch.Tensor) or X.dim() < 2 or X.shape[0] < 1:
        got = getattr(X, "shape", type(X).__name__)
        raise ValueError(f"X must be a tensor of shape (N, ...) with N >= 1, got {got}")
    modules = dict(net.named_modules())
    if layer not in modules:
        raise ValueError(f"net has no submodule {layer!r}; it has {[n for n in modules if n]}")
    if training:
        net = copy.deepcopy(net)
        modules = dict(net.named_modules())
    device = next((t.device for t in net.parameters()), torch.device("cpu"))
    captured: list[torch.Tensor] = []
    handle = modules[layer].register_forward_hook(lambda m, inp, out: captured.append(out.detach()))
    modes = {m: m.training for m in net.modules()}
    try:
        net.train(training)
        with torch.no_grad():
            net(X.to(device))
    finally:
        handle.remove()
        for m, mode in modes.items():
            m.training = mode
    return captured[0]
