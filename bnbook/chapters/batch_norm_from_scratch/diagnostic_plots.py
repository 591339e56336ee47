"""Figures and computed verdicts for the training diagnostics of :mod:`.diagnostics`.

Part of chapter 2, "Batch normalization from scratch" (``notebooks/02_batch_norm_from_scratch.ipynb``,
section 8).  Pure functions: they return a :class:`matplotlib.figure.Figure` or strings and
never call ``plt.show()``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from bnbook.chapters.batch_norm_from_scratch.diagnostics import DiagnosticRun

__all__ = ["plot_distributions", "plot_update_ratios", "layer_spread", "early_level", "summarize", "mean_std"]


def _check_runs(runs: Mapping[str, DiagnosticRun]) -> None:
    if not runs or not all(isinstance(r, DiagnosticRun) for r in runs.values()):
        raise TypeError("runs must be a non-empty dict {label: DiagnosticRun}")


def plot_distributions(runs: Mapping[str, DiagnosticRun], step: int = 0, *, bins: int = 60) -> Figure:
    """Per-layer histograms of the nonlinearities' outputs (top) and their gradients (bottom).

    One column per run (e.g. sigmoid / sigmoid + BN / ReLU / ReLU + BN), one line per hidden
    layer; gradients on a symmetric axis shared by a column, values on the activation's range.
    """
    _check_runs(runs)
    for label, r in runs.items():
        if step not in r.snapshots:
            raise ValueError(f"run {label!r} has no snapshot at step {step}; recorded: {sorted(r.snapshots)}")
    n = len(runs)
    fig = Figure(figsize=(2.45 * n + 1.0, 4.6), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    colors = None
    for j, (label, r) in enumerate(runs.items()):
        snap = r.snapshots[step]
        colors = [f"C{i}" for i in range(len(r.layers))]
        top = max(float(np.abs(snap.values[name]).max()) for name in r.layers)
        v_range = (0.0, 1.0) if r.activation == "sigmoid" else (0.0, max(top, 1e-6))
        g_max = max(float(np.abs(snap.grads[name]).max()) for name in r.layers) or 1.0
        for name, c in zip(r.layers, colors):
            counts, edges = np.histogram(snap.values[name], bins=bins, range=v_range, density=True)
            axes[0, j].stairs(counts, edges, color=c, lw=1.2, label=name)
            counts, edges = np.histogram(snap.grads[name], bins=bins, range=(-g_max, g_max), density=True)
            axes[1, j].stairs(counts, edges, color=c, lw=1.2, label=name)
        axes[0, j].set(title=label, xlabel=f"{r.activation} output", ylabel="density")
        axes[1, j].set(xlabel="dL / d(output)", ylabel="density")
        axes[1, j].ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
        for ax in axes[:, j]:
            ax.set_yscale("log")
            ax.tick_params(labelsize=8)
            ax.xaxis.get_offset_text().set_fontsize(8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="layer", title_fontsize=8)
    fig.suptitle(f"Outputs of each hidden nonlinearity and their gradients, step {step} (seed {r.seed})")
    return fig


def plot_update_ratios(runs: Mapping[str, DiagnosticRun], *, guide: float = -3.0, window: int = 10) -> Figure:
    """``log10(||lr grad W|| / ||W||)`` of every weight matrix over training, one panel per run.

    Curves are running means over ``window`` steps; the dashed line marks ``guide``
    (Karpathy's rule of thumb, about 1e-3).
    """
    _check_runs(runs)
    n = len(runs)
    fig = Figure(figsize=(2.45 * n + 1.0, 2.9), layout="constrained")
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    for ax, (label, r) in zip(axes, runs.items()):
        ratio = r.log10_ratio  # (steps, L)
        w = max(1, min(int(window), ratio.shape[0]))
        kernel = np.ones(w) / w
        steps = np.arange(w - 1, ratio.shape[0])
        for i in range(ratio.shape[1]):
            smooth = np.convolve(ratio[:, i], kernel, mode="valid")
            ax.plot(steps, smooth, color=f"C{i}", lw=1.2, label=f"fc{i + 1}")
        ax.axhline(guide, color="k", ls="--", lw=1, label=f"1e{guide:g}")
        ax.set(title=label, xlabel="training step", ylabel="log10(update / data)")
        ax.yaxis.set_tick_params(labelleft=True)
        ax.tick_params(labelsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="weight", title_fontsize=8)
    fig.suptitle(f"Update-to-data ratio of each weight matrix (running mean of {w} steps, seed {r.seed})")
    return fig


def layer_spread(run: DiagnosticRun, last_fraction: float = 0.5) -> float:
    """max - min over the hidden layers' weights (fc1 .. fc{depth}) of the mean log10 ratio.

    Averaged over the last ``last_fraction`` of the steps: how many decades apart the
    layers learn.
    """
    if not 0 < last_fraction <= 1:
        raise ValueError(f"last_fraction must be in (0, 1], got {last_fraction}")
    r = run.log10_ratio
    start = int(r.shape[0] * (1 - last_fraction))
    mean = r[start:, : len(run.layers)].mean(axis=0)
    return float(mean.max() - mean.min())


def mean_std(values: Sequence[float], fmt: str = ".2f") -> str:
    """``"m ± s"`` with the SAMPLE std (ddof=1); a single value is printed alone ("n = 1")."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    if v.size == 1:
        return f"{v[0]:{fmt}} (n = 1)"
    return f"{v.mean():{fmt}} ± {v.std(ddof=1):{fmt}}"


def early_level(run: DiagnosticRun, first_fraction: float = 0.1) -> float:
    """Mean log10 update ratio of the hidden layers' weights over the first ``first_fraction`` of the steps."""
    if not 0 < first_fraction <= 1:
        raise ValueError(f"first_fraction must be in (0, 1], got {first_fraction}")
    r = run.log10_ratio
    stop = max(1, int(round(r.shape[0] * first_fraction)))
    return float(r[:stop, : len(run.layers)].mean())


def summarize(results: Mapping[tuple, Sequence[DiagnosticRun]]) -> list[str]:
    """Computed one-line verdicts per activation, each over all seeds (mean ± sample std).

    ``results[(activation, norm)]`` is the list of runs over seeds (the same seeds with and
    without BN), ``norm`` None or "batch".  Per activation: the gradient decay from the last
    to the first hidden layer at initialization, the early update-to-data level and the
    spread of the ratios across layers, the test accuracy and the saturation at init.
    """
    lines = []
    for act in dict.fromkeys(a for a, _ in results):
        runs = {"plain": results.get((act, None)), "bn": results.get((act, "batch"))}
        if not runs["plain"] or not runs["bn"] or len(runs["plain"]) != len(runs["bn"]):
            raise ValueError(f"summarize needs as many runs with as without BN for {act!r}")

        def per_run(f):
            return {k: [f(r) for r in rs] for k, rs in runs.items()}

        decay = per_run(lambda r: float(np.log10(r.grad_std(0)[0] / r.grad_std(0)[-1])))
        level = per_run(early_level)
        spread = per_run(layer_spread)
        acc = per_run(lambda r: r.test_acc)
        sat = per_run(lambda r: float(r.saturation(0).max()))
        n, depth = len(runs["plain"]), len(runs["plain"][0].layers)
        every = f"in all {n} seeds" if n > 1 else "(1 seed)"

        def both(d, fmt=".2f"):
            return f"{mean_std(d['plain'], fmt)} without BN, {mean_std(d['bn'], fmt)} with BN"

        lines += [
            f"{act}: log10(grad std at act1 / act{depth}) at init: {both(decay)}",
            f"{act}: log10 update ratio of fc1..fc{depth}, first tenth of training: {both(level)}; "
            f"larger with BN {every}: {all(b > p for b, p in zip(level['bn'], level['plain']))}",
            f"{act}: spread of those ratios across layers, second half (decades): {both(spread)}; "
            f"narrower with BN {every}: {all(b < p for b, p in zip(spread['bn'], spread['plain']))}",
            f"{act}: test accuracy {both(acc, '.3f')}; largest fraction of "
            f"{'units at 0' if act == 'relu' else 'saturated units'} in a layer at init: "
            f"{max(sat['plain']):.2f} without BN, {max(sat['bn']):.2f} with BN",
        ]
    return lines
