"""Chapter 3's slider panel, and the init-scale runs of *Deep Learning from Scratch* it shares with section 5.

Part of chapter 3, "Batch norm in practice" (``notebooks/03_batch_norm_in_practice.ipynb``).
:func:`init_scale_run` trains the network of Saito (2016), *Deep Learning from Scratch*, Sec. 6.3
(5 hidden ReLU layers of 100 units, weights ``N(0, s^2)``, SGD, batches of 100), with or without
BN before each ReLU, and records per-layer histograms; :func:`make_panel` draws a grid of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
from matplotlib.ticker import NullLocator

from bnbook import data as bnbook_data
from bnbook._validate import check_positive_int, check_real
from bnbook.chapters.batch_norm_in_practice.mlp import MLPRun, Tensors, as_tensors, fit_mlp
from bnbook.widgets import Panel, Slider, Toggle

__all__ = ["SAITO", "GRID_SCALES", "PANEL_SCALES", "init_scale_run", "load_small", "make_panel"]

#: The network and optimizer of Saito's batch-norm experiment (his ``MultiLayerNetExtend``).
SAITO = dict(depth=5, width=100, batch_size=100, activation="relu")
#: His 16 weight-init standard deviations, ``np.logspace(0, -4, 16)``: the 4x4 grid.
GRID_SCALES = tuple(float(s) for s in np.logspace(0, -4, 16))
#: Every fifth of them (1, 0.046, 0.0022, 1e-4): the panel's init-scale slider.
PANEL_SCALES = GRID_SCALES[::5]
_COLORS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#c8a800")


def load_small(name: str = "auto", n_train: int = 1000) -> Tensors:
    """The first ``n_train`` training images (Saito uses 1000) and the whole test set, flattened."""
    return as_tensors(bnbook_data.load(name)).head(check_positive_int("n_train", n_train))


def init_scale_run(data: Tensors, *, init_std: float, bn: bool, lr: float = 0.01, steps: int = 200,
                   seed: int = 0, runs: Optional[dict] = None) -> MLPRun:  # fmt: skip
    """Saito's network, BN before every ReLU or none, trained ``steps`` SGD steps (cached in ``runs``)."""
    key = (float(lr), float(init_std), bool(bn), int(seed), int(steps))
    if runs is not None and key in runs:
        return runs[key]
    run = fit_mlp(data, bn="before" if bn else "none", init_std=init_std, lr=lr, steps=steps, seed=seed,
                  hist_steps=(0, steps), **SAITO)  # fmt: skip
    if runs is not None:
        runs[key] = run
    return run


def _smooth(x: np.ndarray, k: int = 10) -> np.ndarray:
    if x.size < k:
        return x
    return np.convolve(x, np.ones(k) / k, mode="valid")


def make_panel(
    quick: bool = True,
    *,
    data: Optional[Tensors] = None,
    runs: Optional[dict] = None,
    lrs: Optional[Sequence[float]] = None,
    init_scales: Sequence[float] = PANEL_SCALES,
    steps: Optional[int] = None,
    seed: int = 0,
) -> Panel:
    """Slider panel: learning rate x init scale x BN on/off, from a grid trained up front.

    Left: the training loss of every step (moving average of 10) with and without BN at the
    chosen learning rate and init scale (the chosen one bold).  Right: histograms of
    ``log10 |x|`` of the input of each ReLU after training, one line per layer: without BN a
    small init scale shrinks the signal layer by layer, a large one blows it up.  Every slider
    move is a redraw; a run that diverged is drawn up to that step and the status says so.

    Parameters
    ----------
    quick : bool
        30 steps per run (200 otherwise: Saito's 20 epochs of 1000 examples).
    data : Tensors, optional
        Default :func:`load_small`.
    runs : dict, optional
        Cache shared with :func:`init_scale_run` (the notebook's grid), filled here.
    lrs, init_scales : sequences of float
        Slider values (log-spaced).
    steps, seed : int
    """
    steps = (30 if quick else 200) if steps is None else check_positive_int("steps", steps)
    lrs = (0.01, 0.1, 1.0) if lrs is None else lrs
    lrs = tuple(check_real("lrs entry", v, low=0.0, low_open=True) for v in lrs)
    init_scales = tuple(check_real("init_scales entry", v, low=0.0, low_open=True) for v in init_scales)
    if not lrs or not init_scales:
        raise ValueError("lrs and init_scales must each hold at least one value")
    seed = check_positive_int("seed", seed, minimum=0)
    data = load_small() if data is None else data
    runs = {} if runs is None else runs
    grid = {}
    for lr in lrs:
        for s in init_scales:
            for bn in (False, True):
                grid[lr, s, bn] = init_scale_run(data, init_std=s, bn=bn, lr=lr, steps=steps, seed=seed, runs=runs)
    first = next(iter(grid.values()))
    edges = first.edges
    layers = list(first.hist)

    def setup(fig):
        ax_l, ax_h = fig.subplots(1, 2)
        lines = {bn: ax_l.plot([], [], color="tab:orange" if bn else "tab:blue")[0] for bn in (False, True)}
        ax_l.text(0.97, 0.93, "with BN", color="tab:orange", ha="right", fontsize=9, transform=ax_l.transAxes)
        ax_l.text(0.97, 0.85, "without BN", color="tab:blue", ha="right", fontsize=9, transform=ax_l.transAxes)
        # Fixed ticks and no minor ticks: tick layout is most of the drawing time of a log axis.
        ax_l.set(xlim=(0, steps), yscale="log", ylim=(1e-3, 30), xlabel="training step",
                 ylabel="training loss (nats, mean of 10)", yticks=[1e-3, 1e-2, 0.1, 1, 10],
                 xticks=np.linspace(0, steps, 5).round().astype(int))  # fmt: skip
        ax_l.yaxis.set_minor_locator(NullLocator())
        ax_l.axhline(np.log(10), color="0.5", lw=0.8, ls=":")
        ax_l.text(2, np.log(10) * 1.15, "chance: ln 10", fontsize=8, color="0.4")
        zeros = np.zeros(edges.size - 1)
        stairs = []
        for i in range(len(layers)):
            c = _COLORS[i % len(_COLORS)]
            stairs.append(ax_h.stairs(zeros, edges, color=c, lw=1.4))
            ax_h.text(0.97, 0.93 - 0.075 * i, f"layer {i + 1}", color=c, fontsize=8, ha="right",
                      transform=ax_h.transAxes)  # fmt: skip
        ticks = np.arange(np.ceil(edges[0]), edges[-1] + 1, 4)
        ax_h.set(xlim=(edges[0], edges[-1]), xlabel="log10 |input of ReLU| after training",
                 ylabel="fraction of values per bin", xticks=ticks)  # fmt: skip
        for ax in (ax_l, ax_h):
            ax.grid(alpha=0.3)
        return dict(ax_l=ax_l, ax_h=ax_h, lines=lines, stairs=stairs)

    def update(state, lr, init_scale, bn):
        top = 0.05
        for b, line in state["lines"].items():
            run = grid[lr, init_scale, b]
            y = _smooth(run.loss)
            line.set_data(np.arange(y.size) + (run.loss.size - y.size) + 1, y)
            line.set_linewidth(2.4 if b == bn else 0.9)
            line.set_linestyle("-" if b == bn else "--")
        run = grid[lr, init_scale, bn]
        for art, name in zip(state["stairs"], layers):
            h = run.hist[name][-1] / max(run.hist[name][-1].sum(), 1)
            art.set_data(h)
            top = max(top, float(h.max()))
        state["ax_h"].set_ylim(0, top * 1.1)
        state["ax_h"].set_yticks(np.round(np.linspace(0, top, 3), 2 if top > 0.05 else 3))
        label = f"lr {lr:g}, init std {init_scale:.2g}, {'with' if bn else 'without'} BN"
        state["ax_l"].set_title(f"Training loss: {label}", fontsize=10)
        step = run.hist_steps[-1]
        state["ax_h"].set_title(f"ReLU inputs per layer at step {step}", fontsize=10,
                                color="#b00020" if run.diverged else "black")  # fmt: skip
        med = [float(np.median(10 ** (edges[:-1][run.hist[n][-1] > 0]))) if run.hist[n][-1].any() else 0.0
               for n in layers]  # fmt: skip
        text = f"{label}: train accuracy {run.train_acc:.2f}, test accuracy {run.test_acc:.2f}"
        if run.diverged:
            text = (
                f"Diverged at step {run.diverged_at} (loss not finite or > 1e3); histograms from step {step}. " + text
            )
        return text + f"; typical |x| in layer 1 vs {len(layers)}: {med[0]:.1e} vs {med[-1]:.1e}"

    fmt = "{:.2g}"
    controls = {
        "lr": Slider("learning rate", lrs, 0.01 if 0.01 in lrs else lrs[0], fmt="{:g}"),
        "init_scale": Slider("init std", init_scales, init_scales[len(init_scales) // 2], fmt=fmt),
        "bn": Toggle("batch norm", True),
    }
    return Panel(
        controls,
        setup,
        update,
        figsize=(10, 3.4),
        dpi=80,
        title=f"Saito's 5x100 ReLU MLP, {steps} SGD steps on {data.name}",
    )
