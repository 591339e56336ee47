"""The batch-norm explorer panel: momentum, eps, batch size and train/eval on real activations.

Introduced in chapter 2 ("Batch normalization from scratch").  :func:`make_panel` builds a
:class:`bnbook.widgets.Panel` that drives one ``BatchNorm1d`` layer over pre-BN activations
of a LeNet (the outputs of its first fully connected layer, ``fc1``, i.e. the input of
``bn3``) and redraws three plots for one feature:

(a) the distribution of that feature before BN and after it, in the chosen mode;
(b) ``running_mean`` / ``running_var`` over the training steps, against the population values;
(c) the same examples' train-mode output (batch statistics) against their eval-mode output
    (running statistics): the train/eval mismatch.

Everything that does not depend on a control is computed once (the activations, the batch
order for every batch size, the histogram bins); running statistics are cached per
``(momentum, batch_size)`` (``eps`` does not change them), so a slider move costs a few
vectorized tensor operations plus one redraw.  Batch size 1 in training mode shows
PyTorch's own error (``Expected more than 1 value per channel when training``) in the panel,
and a figure that matches it: empty axes saying that no training-mode output exists
(``update`` draws them, then raises :class:`bnbook.widgets.DrawnError` from PyTorch's error, so
the panel shows that figure rather than the previous image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from matplotlib import ticker

from bnbook._impl import IMPLS
from bnbook._validate import check_choice, check_eps, check_momentum, check_positive_int
from bnbook.chapters.batch_norm_from_scratch.activations import check_2d, default_activations, pick_feature
from bnbook.chapters.batch_norm_from_scratch.running_stats import (
    batch_size_one_error,
    normalize_in_batches,
    normalize_with,
    running_average,
)
from bnbook.loaders import batch_indices
from bnbook.widgets import Choice, DrawnError, Panel, Slider

__all__ = ["MOMENTA", "EPSILONS", "BATCH_SIZES", "MODES", "IMPLS", "NO_TRAIN_OUTPUT", "Explorer", "make_panel"]

#: Slider positions.  0.9 and 0.99 are what d2l's older code, cs231n and Keras call
#: momentum; in PyTorch's convention they weight the *new* batch (see chapter 2).
MOMENTA = (0.0, 0.01, 0.03, 0.1, 0.3, 0.9, 0.99, 1.0)
EPSILONS = (1e-10, 1e-5, 1e-3, 1e-2, 1e-1, 1.0)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MODES = ("train", "eval")

_BINS = 72  # histogram bins of plot (a)
_SCATTER_LIMIT = 4.5  # plot (c) shows [-L, L]^2; points beyond are drawn on the border
_SCATTER_POINTS = 512  # plot (c) draws the first 512 evaluation examples (the gap uses all)
#: What plots (a) and (c) say at batch size 1 in train mode, where the layer raises.
NO_TRAIN_OUTPUT = "no training-mode output:\na batch of 1 raises\n(error below)"


@dataclass
class Explorer:
    """Everything the panel precomputes, plus the pure ``compute`` step behind every redraw.

    Parameters
    ----------
    x : Tensor, shape (N, D)
        Pre-BN activations: the pool the mini-batches are drawn from.
    feature : int, optional
        The feature shown (default :func:`pick_feature`).
    steps : int
        Training steps simulated for the running statistics.
    num_eval : int
        Examples (a random subset of the pool) whose train/eval outputs are compared; rounded
        down to a multiple of the largest usable batch size.
    impl : {"bnbook", "torch"}
        Which ``BatchNorm1d`` / ``batch_norm`` drives the panel.
    seed : int
        Seeds the batch order and the subset (private generators).
    """

    x: torch.Tensor
    feature: Optional[int] = None
    steps: int = 200
    num_eval: int = 1024
    impl: str = "bnbook"
    seed: int = 0
    source: str = "pre-BN activations"
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.x = check_2d("x", self.x).detach().float().cpu()
        n, d = self.x.shape
        if n < 2:
            raise ValueError(f"x needs at least 2 examples (rows), got {n}")
        check_choice("impl", self.impl, IMPLS)
        self.steps = check_positive_int("steps", self.steps)
        if self.feature is None:
            self.feature = pick_feature(self.x)
        if isinstance(self.feature, bool) or not isinstance(self.feature, int) or not 0 <= self.feature < d:
            raise ValueError(f"feature must be an int in [0, {d - 1}], got {self.feature!r}")
        self.batch_sizes = tuple(b for b in BATCH_SIZES if b <= n)
        bmax = max(self.batch_sizes)
        m = min(check_positive_int("num_eval", self.num_eval), n)
        m = max(bmax, m // bmax * bmax)
        gen = torch.Generator().manual_seed(self.seed)
        self.x_eval = self.x[torch.randperm(n, generator=gen)[:m]]  # (M, D)
        col = self.x[:, self.feature].double()
        self.pop_mean = float(col.mean())
        self.pop_var = float(col.var(unbiased=False))
        pre = self.x_eval[:, self.feature].numpy()
        lo = min(-4.0, float(np.quantile(pre, 0.005)))
        hi = max(4.0, float(np.quantile(pre, 0.995)))
        self.bins = np.linspace(lo, hi, _BINS + 1)
        self.pre_hist = np.histogram(np.clip(pre, lo, hi), self.bins, density=True)[0]
        self.error_b1 = batch_size_one_error(d, impl=self.impl)

    # -- cached pieces -----------------------------------------------------------------
    def batch_stats(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and *unbiased* variance of the shown feature in each of the ``steps`` batches.

        Shape (S, 1) each: exactly what ``BatchNorm1d`` folds into its buffers at every
        training step.  Independent of momentum and eps, so computed once per batch size.
        """
        key = ("batch", batch_size)
        if key not in self._cache:
            idx = batch_indices(self.x.shape[0], batch_size, self.steps, seed=self.seed)  # (S, B)
            xb = self.x[:, self.feature][idx]  # (S, B)
            var, mean = torch.var_mean(xb, dim=1, keepdim=True, correction=1)  # (S, 1) each
            self._cache[key] = (mean, var)
        return self._cache[key]

    def running(self, momentum: float, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``running_mean`` and ``running_var`` of the shown feature after steps 0..S, shape (S+1,).

        The same numbers as driving ``BatchNorm1d(momentum=momentum)`` step by step over the
        batches of :meth:`batch_stats` (``tests/test_bn_explorer.py`` checks this against
        ``torch.nn.BatchNorm1d``), but without repeating the batch statistics per momentum.
        """
        key = (momentum, batch_size)
        if key not in self._cache:
            mean, var = self.batch_stats(batch_size)
            self._cache[key] = (running_average(mean, momentum, 0.0)[:, 0].numpy(),
                                running_average(var, momentum, 1.0)[:, 0].numpy())
        return self._cache[key]

    def compute(self, momentum: float, eps: float, batch_size: int, mode: str) -> dict:
        """All numbers of one redraw (no drawing).  Raises PyTorch's ValueError at B = 1 in train mode."""
        momentum = check_momentum(momentum, allow_none=False)
        eps = check_eps(eps)
        batch_size = check_positive_int("batch_size", batch_size)
        check_choice("mode", mode, MODES)
        n = self.x.shape[0]
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} exceeds the {n} examples in the pool")
        k = self.feature
        xk = self.x_eval[:, k : k + 1]  # (M, 1)
        if batch_size == 1:
            if mode == "train":
                raise ValueError(
                    f"{self.error_b1}\n(a batch of one example has no spread to normalize by; "
                    "in eval mode a single example is fine)"
                )
            # Every training step would have raised, so the buffers keep their initial values.
            means = np.zeros(self.steps + 1, dtype=np.float32)
            variances = np.ones(self.steps + 1, dtype=np.float32)
            y_train = None
        else:
            means, variances = self.running(momentum, batch_size)
            y_train = normalize_in_batches(xk, batch_size, eps)[:, 0].numpy()  # (M,)
        y_eval = normalize_with(xk, means[-1], variances[-1], eps, impl=self.impl)[:, 0].numpy()  # (M,)
        gap = None if y_train is None else float(np.sqrt(np.mean((y_train - y_eval) ** 2)))
        return {"means": means, "vars": variances, "y_train": y_train, "y_eval": y_eval, "gap": gap,
                "post": y_train if mode == "train" else y_eval}

    # -- drawing ---------------------------------------------------------------------
    def setup(self, fig) -> dict:
        """Create the axes and every artist once (the panel's ``setup``)."""
        gs = fig.add_gridspec(2, 3, width_ratios=[1.15, 1.0, 0.8])
        ax_a = fig.add_subplot(gs[:, 0])
        ax_m = fig.add_subplot(gs[0, 1])
        ax_v = fig.add_subplot(gs[1, 1], sharex=ax_m)
        ax_c = fig.add_subplot(gs[:, 2])

        zeros = np.zeros(_BINS)
        ax_a.stairs(self.pre_hist, self.bins, fill=True, color="0.6", alpha=0.6, label="before BN")
        post = ax_a.stairs(zeros, self.bins, fill=False, color="tab:orange", lw=1.8, label="after BN")
        z = np.linspace(-4, 4, 161)
        ax_a.plot(z, np.exp(-z**2 / 2) / np.sqrt(2 * np.pi), ":", color="k", lw=1, label="N(0, 1)")
        ax_a.set(xlabel="activation value", ylabel="density", xlim=(self.bins[0], self.bins[-1]))
        ax_a.legend(fontsize=8, loc="upper left")
        peak = ax_a.text(0.98, 0.97, "", transform=ax_a.transAxes, ha="right", va="top", fontsize=8, color="0.35")
        boxed = {"facecolor": "white", "edgecolor": "tab:red", "alpha": 0.9}
        blank = ax_a.text(0.5, 0.5, "", transform=ax_a.transAxes, ha="center", va="center", fontsize=9,
                          color="tab:red", bbox=boxed)

        t = np.arange(self.steps + 1)
        (rm,) = ax_m.plot(t, np.zeros(t.size), color="tab:blue", lw=1.3, label="running_mean")
        ax_m.axhline(self.pop_mean, color="k", ls="--", lw=1, label="population")
        ax_m.set(ylabel="mean")
        ax_m.set_title("(b) running statistics", fontsize="medium")
        ax_m.legend(fontsize=8, loc="lower right")
        ax_m.tick_params(labelbottom=False)
        (rv,) = ax_v.plot(t, np.ones(t.size), color="tab:red", lw=1.3, label="running_var")
        ax_v.axhline(self.pop_var, color="k", ls="--", lw=1, label="population")
        ax_v.set(xlabel="training step", ylabel="var (log)", yscale="log", xlim=(0, self.steps))
        ax_v.legend(fontsize=8, loc="upper right")

        L = _SCATTER_LIMIT
        ax_c.plot([-L, L], [-L, L], color="0.5", lw=1, ls="--")
        scat = ax_c.scatter(np.zeros(0), np.zeros(0), s=5, alpha=0.35, color="tab:purple", edgecolors="none")
        note = ax_c.text(0, 0, "", ha="center", va="center", fontsize=8, color="tab:red", bbox=boxed)
        ax_c.set(xlim=(-L, L), ylim=(-L, L), xlabel="train-mode output (batch stats)",
                 ylabel="eval-mode output (running stats)")
        ax_c.set_aspect("equal")

        # Tick computation and text layout dominate the redraw: freeze the ticks of every axis
        # whose limits never change and keep the others to a few ticks (no minor log ticks).
        ax_a.xaxis.set_major_locator(ticker.FixedLocator(ticker.MaxNLocator(6, integer=True).tick_values(*self.bins[[0, -1]])))
        ax_v.xaxis.set_major_locator(ticker.FixedLocator(ticker.MaxNLocator(5, integer=True).tick_values(0, self.steps)))
        for axis in (ax_c.xaxis, ax_c.yaxis):
            axis.set_major_locator(ticker.FixedLocator([-4, -2, 0, 2, 4]))
        for axis in (ax_a.yaxis, ax_m.yaxis):
            axis.set_major_locator(ticker.MaxNLocator(4))
        ax_v.yaxis.set_major_locator(ticker.LogLocator(numticks=4))
        ax_v.yaxis.set_minor_locator(ticker.NullLocator())
        return {"ax_a": ax_a, "ax_m": ax_m, "ax_v": ax_v, "ax_c": ax_c, "post": post, "peak": peak,
                "blank": blank, "rm": rm, "rv": rv, "scat": scat, "note": note}

    def _draw_no_train_output(self, state: dict) -> None:
        """Batch size 1, train mode: empty (a) and (c) saying why, buffers at 0 and 1 in (b)."""
        state["post"].set_data(np.zeros(_BINS))
        state["ax_a"].set_ylim(0, 1.15 * max(float(self.pre_hist.max()), 0.45))
        state["peak"].set_text("")
        state["blank"].set_text(NO_TRAIN_OUTPUT)
        state["ax_a"].set_title(f"(a) feature {self.feature}, train mode", fontsize="medium")
        means, variances = np.zeros(self.steps + 1), np.ones(self.steps + 1)  # every step raised
        state["rm"].set_ydata(means)
        state["rv"].set_ydata(variances)
        m_lo, m_hi = min(0.0, self.pop_mean), max(0.0, self.pop_mean)
        pad = 0.1 * (m_hi - m_lo) + 1e-3
        state["ax_m"].set_ylim(m_lo - pad, m_hi + pad)
        state["ax_v"].set_ylim(min(1.0, self.pop_var) / 1.6, max(1.0, self.pop_var) * 1.6)
        state["scat"].set_offsets(np.zeros((0, 2)))
        state["note"].set_text(NO_TRAIN_OUTPUT)
        state["ax_c"].set_title("(c) train vs eval", fontsize="medium")

    def update(self, state: dict, momentum: float, eps: float, batch_size: int, mode: str) -> str:
        """Mutate the artists for new control values (the panel's ``update``); returns the status.

        At batch size 1 in train mode it draws the matching figure (no output in (a) and (c),
        the untouched buffers in (b)) and raises :class:`bnbook.widgets.DrawnError` from
        PyTorch's ValueError, which the panel shows as the status beside that figure.
        """
        try:
            r = self.compute(momentum, eps, batch_size, mode)
        except ValueError as exc:
            if batch_size == 1 and mode == "train":
                self._draw_no_train_output(state)
                raise DrawnError(str(exc)) from exc
            raise
        state["blank"].set_text("")
        lo, hi = self.bins[0], self.bins[-1]
        post = np.histogram(np.clip(r["post"], lo, hi), self.bins, density=True)[0]
        state["post"].set_data(post)
        top = 1.15 * max(float(post.max()), 0.45)
        state["ax_a"].set_ylim(0, top)
        pre_peak = float(self.pre_hist.max())
        state["peak"].set_text(f"before-BN peak {pre_peak:.3g}\n(off scale)" if pre_peak > top else "")
        state["ax_a"].set_title(f"(a) feature {self.feature}, {mode} mode", fontsize="medium")

        means, variances = r["means"], np.maximum(r["vars"], 1e-12)
        state["rm"].set_ydata(means)
        state["rv"].set_ydata(variances)
        m_lo, m_hi = min(float(means.min()), self.pop_mean), max(float(means.max()), self.pop_mean)
        pad = 0.1 * (m_hi - m_lo) + 1e-3
        state["ax_m"].set_ylim(m_lo - pad, m_hi + pad)
        v_lo = min(float(variances.min()), self.pop_var)
        v_hi = max(float(variances.max()), self.pop_var)
        state["ax_v"].set_ylim(v_lo / 1.6, v_hi * 1.6)

        L = _SCATTER_LIMIT
        if r["y_train"] is None:
            state["scat"].set_offsets(np.zeros((0, 2)))
            state["note"].set_text("no train-mode output\nat batch size 1")
            state["ax_c"].set_title("(c) train vs eval", fontsize="medium")
        else:
            pts = np.clip(np.column_stack([r["y_train"], r["y_eval"]])[: _SCATTER_POINTS], -L, L)
            state["scat"].set_offsets(pts)
            state["note"].set_text("")
            state["ax_c"].set_title(f"(c) train vs eval: RMS gap {r['gap']:.2f}", fontsize="medium")

        rm, rv = float(r["means"][-1]), float(r["vars"][-1])
        status = (f"after {self.steps} steps: running_mean {rm:.3g} (population {self.pop_mean:.3g}), "
                  f"running_var {rv:.3g} (population {self.pop_var:.3g}). ")
        if batch_size == 1:
            status += ("Batch size 1: every training step raises PyTorch's 'Expected more than 1 value per "
                       "channel when training', so the buffers keep their initial 0 and 1.")
        elif mode == "train":
            status += f"Train mode: each batch of {batch_size} is normalized with its own mean and variance."
        else:
            status += "Eval mode: every example is normalized with running_mean and running_var."
        if momentum == 0:
            status += " Momentum 0: the running statistics never move."
        elif momentum >= 0.9:
            status += (f" Momentum {momentum:g} keeps {1 - momentum:.0%} of the old estimate: 0.9/0.99 ported "
                       "from Keras/cs231n/old d2l code, where momentum weights the OLD value.")
        return status


def make_panel(
    quick: bool = True,
    *,
    activations: Optional[torch.Tensor] = None,
    source: Optional[str] = None,
    feature: Optional[int] = None,
    steps: Optional[int] = None,
    impl: str = "bnbook",
    dataset: str = "auto",
    seed: int = 0,
):
    """The chapter-2 slider panel: momentum, eps, batch size and train/eval on real activations.

    Parameters
    ----------
    quick : bool
        Smaller defaults (1024 images, 150 steps) instead of (4096, 300).
    activations : Tensor, shape (N, D), optional
        Pre-BN activations, e.g. ``pre_bn_activations(trained_lenet, X, "fc1")``; default
        :func:`default_activations`.
    source : str, optional
        Where the activations come from (shown in the title).
    feature : int, optional
        Feature shown (default: the most shifted one, :func:`pick_feature`).
    steps : int, optional
        Training steps simulated for the running statistics.
    impl : {"bnbook", "torch"}
        ``BatchNorm1d`` of :mod:`bnbook.layers` (default) or ``torch.nn``.
    dataset : str
        For the default activations, passed to :func:`bnbook.data.load`.
    seed : int
        Batch order, evaluation subset and the default LeNet's initialization.

    Returns
    -------
    bnbook.widgets.Panel
        A :class:`bnbook.widgets.Panel`; controls ``momentum``, ``eps``, ``batch_size`` (sliders) and ``mode`` (train/eval).
    """

    if activations is None:
        activations, default_source = default_activations(quick, dataset=dataset, seed=seed)
        source = source or default_source
    if steps is None:
        steps = 150 if quick else 300
    ex = Explorer(activations, feature=feature, steps=steps, impl=impl, seed=seed,
                  source=source or "pre-BN activations")
    sizes = ex.batch_sizes
    default_b = 32 if 32 in sizes else sizes[-1]
    controls = {
        "momentum": Slider("momentum", MOMENTA, 0.1, static_values=(0.0, 0.1, 0.9, 1.0)),
        "eps": Slider("eps", EPSILONS, 1e-5, static_values=(1e-5, 1e-1)),
        "batch_size": Slider("batch size", sizes, default_b,
                             static_values=tuple(b for b in sizes if b in (1, 4, 256, default_b))),
        "mode": Choice("mode", MODES, "train"),
    }
    title = f"BatchNorm1d on real activations ({ex.source}), feature {ex.feature}"
    panel = Panel(controls, ex.setup, ex.update, figsize=(10, 3.3), dpi=80, title=title)
    panel.explorer = ex  # for tests and curious readers
    return panel
