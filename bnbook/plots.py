"""Plotting functions shared by the chapters: training curves, percentiles, histograms.

Introduced in chapter 1, "Internal covariate shift" (percentiles and histograms of
activations, Ioffe & Szegedy 2015, Fig. 1; ``notebooks/01_internal_covariate_shift.ipynb``), and
used by chapter 2, "Batch normalization from scratch" (training curves with
:func:`plot_history`; running statistics with :func:`plot_running_stats`).

Every function is pure: it returns a ``matplotlib.figure.Figure`` (drawing into ``ax`` if one
is given) and never calls ``plt.show()`` or changes ``rcParams``. New figures are created
with ``matplotlib.figure.Figure`` rather than ``pyplot``, so they are not registered with
pyplot: a notebook shows a returned figure exactly once, and nothing leaks between calls.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Optional

import matplotlib
import numpy as np
from matplotlib import cm, colors
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_history", "plot_percentiles", "plot_histograms", "plot_running_stats"]


class _Figure(Figure):
    """A Figure that Jupyter displays as a PNG even if ``matplotlib.pyplot`` was never imported.

    (IPython's matplotlib formatter is only registered once pyplot is imported; if it is, it
    takes precedence over ``_repr_png_`` and the output is the same.)
    """

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def _axes(ax: Optional[Axes], figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        fig = _Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax


def _as_2d(name: str, values, num_rows: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] != num_rows:
        raise ValueError(f"{name} must have shape (T,) or (T, K) with T = len(steps) = {num_rows}, got {v.shape}")
    return v


def _as_steps(steps) -> np.ndarray:
    s = np.asarray(steps, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"steps must be 1-D, got shape {s.shape}")
    return s


def _check_labels(labels, k: int) -> list:
    if labels is None:
        return [None] * k
    labels = list(labels)
    if len(labels) != k:
        raise ValueError(f"labels must have one entry per column ({k}), got {len(labels)}")
    return labels


def plot_history(history, *, figsize: Optional[tuple[float, float]] = None) -> Figure:
    """Training curves of a :class:`bnbook.train.History` (or its ``as_dict()``).

    Left: mean training loss per epoch. Middle: training and test accuracy per epoch. Right
    (only if ``eval_every`` was used): test accuracy against optimizer steps.
    """
    h: Mapping = history if isinstance(history, Mapping) else getattr(history, "__dict__", None)
    if h is None or "train_loss" not in h:
        raise TypeError(f"history must be a bnbook.train.History or its as_dict(), got {type(history).__name__}")
    steps = list(h.get("steps") or [])
    ncols = 3 if steps else 2
    fig = _Figure(figsize=figsize or (4.0 * ncols, 3.2), layout="constrained")
    axes = fig.subplots(1, ncols)
    epochs = np.arange(1, len(h["train_loss"]) + 1)

    ax = axes[0]
    ax.plot(epochs, h["train_loss"], "o-", label="train loss")
    ax.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy (nats)")
    ax.legend()

    ax = axes[1]
    ax.plot(epochs, h["train_acc"], "o-", label="train acc")
    ax.plot(epochs, h["test_acc"], "s--", label="test acc")
    ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (fraction correct)")
    ax.legend()

    if steps:
        s, acc = zip(*steps)
        ax = axes[2]
        ax.plot(s, acc, "-", label="test acc")
        ax.set(title="Test accuracy during training", xlabel="training step", ylabel="accuracy (fraction correct)")
        ax.legend()
    for ax in axes[:2]:
        ax.set_xlim(0.5, max(len(epochs), 1) + 0.5)
    for ax in axes:
        ax.grid(alpha=0.3)
    device = h.get("device", "")
    fig.suptitle(f"Training history ({len(epochs)} epochs on {device})" if device else "Training history")
    return fig


def plot_percentiles(
    steps: Sequence[float],
    values,
    labels: Optional[Sequence[str]] = None,
    ax: Optional[Axes] = None,
    *,
    title: str = "Percentiles over training",
    xlabel: str = "training step",
    ylabel: str = "value",
) -> Figure:
    """One line per percentile against training step, as in Ioffe & Szegedy (2015), Fig. 1(b, c).

    Parameters
    ----------
    steps : sequence, shape (T,)
    values : array, shape (T, P)
        E.g. the second output of :meth:`bnbook.probes.ActivationProbe.percentiles`.
    labels : sequence of P str, optional
        Legend entries, e.g. ``["15th", "50th", "85th"]``.
    ax : Axes, optional
        Draw into this axes instead of a new figure.
    """
    s = _as_steps(steps)
    v = _as_2d("values", values, s.size)
    labels = _check_labels(labels, v.shape[1])
    fig, ax = _axes(ax, (5.0, 3.2))
    for j in range(v.shape[1]):
        ax.plot(s, v[:, j], label=labels[j])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if any(lab is not None for lab in labels):
        ax.legend(title="percentile")
    ax.grid(alpha=0.3)
    return fig


def plot_histograms(
    edges: Sequence[float],
    values,
    steps: Optional[Sequence[float]] = None,
    ax: Optional[Axes] = None,
    *,
    title: str = "Distribution over training",
    xlabel: str = "value",
    ylabel: str = "count",
    cmap: str = "viridis",
) -> Figure:
    """Overlay histograms over shared bins, coloured from early (dark) to late (bright) steps.

    Parameters
    ----------
    edges : sequence, shape (B + 1,)
        Bin edges shared by all histograms.
    values : array, shape (T, B) or (B,)
        Counts or densities, e.g. from :meth:`bnbook.probes.ActivationProbe.histograms`.
    steps : sequence, shape (T,), optional
        Step of each histogram; adds a colour bar labelled "training step".
    ax : Axes, optional
        Draw into this axes instead of a new figure.
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError(f"edges must be >= 2 strictly increasing values, got shape {e.shape}")
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != e.size - 1:
        raise ValueError(f"values must have shape (T, B) with B = len(edges) - 1 = {e.size - 1}, got {v.shape}")
    if steps is not None:
        s = _as_steps(steps)
        if s.size != v.shape[0]:
            raise ValueError(f"steps has {s.size} entries but values has {v.shape[0]} histograms")
    else:
        s = np.arange(v.shape[0], dtype=np.float64)
    fig, ax = _axes(ax, (5.5, 3.2))
    norm = colors.Normalize(vmin=s.min() if s.size else 0, vmax=s.max() if s.size and s.max() > s.min() else 1)
    colormap = matplotlib.colormaps[cmap]
    for j in range(v.shape[0]):
        ax.stairs(v[j], e, color=colormap(norm(s[j])), alpha=0.8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if steps is not None and v.shape[0] > 0:
        fig.colorbar(cm.ScalarMappable(norm=norm, cmap=colormap), ax=ax, label="training step")
    ax.grid(alpha=0.3)
    return fig


def plot_running_stats(
    steps: Sequence[float],
    running,
    batch=None,
    labels: Optional[Sequence[str]] = None,
    ax: Optional[Axes] = None,
    *,
    title: str = "Running estimate vs. per-batch statistic",
    xlabel: str = "training step",
    ylabel: str = "value",
) -> Figure:
    """Running estimates (lines) over the per-batch statistics they average (dots).

    Parameters
    ----------
    steps : sequence, shape (T,)
    running : array, shape (T,) or (T, K)
        E.g. ``bn.running_mean[:K]`` recorded after every step.
    batch : array, shape (T,) or (T, K), optional
        The per-batch statistic that the running estimate tracks, same layout.
    labels : sequence of K str, optional
        One legend entry per column, e.g. ``["channel 0", "channel 1"]``.
    ax : Axes, optional
        Draw into this axes instead of a new figure.
    """
    s = _as_steps(steps)
    r = _as_2d("running", running, s.size)
    b = None if batch is None else _as_2d("batch", batch, s.size)
    if b is not None and b.shape[1] != r.shape[1]:
        raise ValueError(f"batch has {b.shape[1]} columns but running has {r.shape[1]}")
    labels = _check_labels(labels, r.shape[1])
    fig, ax = _axes(ax, (5.5, 3.2))
    for j in range(r.shape[1]):
        (line,) = ax.plot(s, r[:, j], lw=2, label=(f"{labels[j]} running" if labels[j] else "running"))
        if b is not None:
            ax.plot(
                s,
                b[:, j],
                ".",
                ms=3,
                alpha=0.5,
                color=line.get_color(),
                label=(f"{labels[j]} batch" if labels[j] else "batch"),
            )
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if r.shape[1] <= 6:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig
