"""Chapter 4's slider panel: which elements each norm pools, and what it does to real activations.

Part of chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm"
(``notebooks/04_layer_instance_group_norm.ipynb``).  Controls: the norm (BN / LN / IN / GN / RMS),
GN's number of groups (the divisors of C) and the batch size.  Left: the (N, C, H x W) cube with
the pooled set of element (0, 0) in blue (at most 8 samples drawn).  Middle: mean and standard deviation of every pooled
set of the batch (RMS: its root mean square).  Right: the distribution of the normalized
outputs, all channels and channel 0 alone, against N(0, 1).  Every combination is valid, so
every slider position draws (num_groups is used by GN only, as the status line says).
"""

from __future__ import annotations

import numpy as np
import torch

from bnbook._validate import ShapeError, check_floating
from bnbook.chapters.layer_instance_group_norm.cube import draw_cube, update_cube
from bnbook.chapters.layer_instance_group_norm.pooling import KINDS, LABELS, normalize, set_statistics
from bnbook.chapters.layer_instance_group_norm.sweeps import divisors
from bnbook.state import num_threads
from bnbook.widgets import Choice, Panel, Slider

__all__ = ["PANEL_BATCH_SIZES", "default_activations", "make_panel"]

PANEL_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
_EDGES = np.linspace(-4, 4, 41)


def default_activations(num: int = 32, seed: int = 0) -> torch.Tensor:
    """Real activations (num, 16, 14, 14): the first conv layer of a seeded CNN on MNIST-5k test images."""
    from bnbook import data  # as a module, so that tests can patch data.load
    from bnbook.chapters.layer_instance_group_norm.cnn import small_cnn
    from bnbook.loaders import datasets_of, first

    _, test = datasets_of(data.load("mnist5k", resize=14))
    X, _ = first(test, num)  # (num, 1, 14, 14)
    with torch.no_grad():
        return small_cnn("none", seed=seed).conv1(X)


def make_panel(quick: bool = True, *, activations: torch.Tensor | None = None, source: str | None = None) -> Panel:
    """The panel over ``activations`` (N, C, H, W) with N >= 32 (default :func:`default_activations`).

    ``quick`` is accepted for the book's benchmark interface; the panel computes every frame live
    (a few milliseconds), so it changes nothing.
    """
    if activations is None:
        activations = default_activations()
        source = source or "conv1 of a seeded CNN, MNIST-5k test images"
    check_floating("activations", activations)
    if activations.dim() != 4 or activations.shape[0] < max(PANEL_BATCH_SIZES):
        raise ShapeError(
            f"activations must be (N, C, H, W) with N >= {max(PANEL_BATCH_SIZES)}, got {list(activations.shape)}"
        )
    acts = activations.detach().to(torch.float32)
    c, h, w = acts.shape[1:]
    groups = divisors(c)
    default_g = groups[len(groups) // 2]

    def setup(fig):
        ax_c, ax_s, ax_h = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.1, 1.1]})
        cube = draw_cube(ax_c, "batch", n=4, c=min(c, 16), s=3, title=False)
        ax_c.set_title(" ", fontsize=10, y=1.0)  # a fixed title height: no layout pass per redraw
        (pts,) = ax_s.plot([], [], "o", ms=3, color="#3b6fb6", alpha=0.7)
        ax_s.set(xlabel="mean of the pooled set", ylabel="std (RMS: root mean square)")
        ax_s.set_title("one point = one mean and variance", fontsize=10, y=1.0)
        ax_s.locator_params(nbins=4)
        ax_s.grid(alpha=0.3)
        zeros = np.zeros(_EDGES.size - 1)
        all_st = ax_h.stairs(zeros, _EDGES, fill=True, color="0.75")
        ch0_st = ax_h.stairs(zeros, _EDGES, color="#d1495b", lw=1.8)
        grid = np.linspace(-4, 4, 100)
        ax_h.plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), "k--", lw=1)
        # coloured labels instead of a legend: cheaper to draw on every update
        for i, (label, color) in enumerate((("all channels", "0.45"), ("channel 0", "#d1495b"), ("N(0, 1)", "k"))):
            ax_h.text(0.97, 0.92 - 0.09 * i, label, color=color, fontsize=8, ha="right", transform=ax_h.transAxes)
        ax_h.set(xlim=(-4, 4), ylim=(0, 1.2), xticks=[-4, -2, 0, 2, 4], yticks=[0, 0.4, 0.8, 1.2],
                 xlabel="normalized output", ylabel="density (clipped at 1.2)")  # fmt: skip
        ax_h.set_title("output distribution", fontsize=10, y=1.0)
        return dict(ax_c=ax_c, ax_s=ax_s, ax_h=ax_h, cube=cube, pts=pts, all=all_st, ch0=ch0_st)

    def update(state, norm, num_groups, batch_size):
        kind = norm
        x = acts[:batch_size]  # (B, C, H, W)
        g = num_groups if kind == "group" else None
        with num_threads(1):  # small tensors: one thread is ~20x faster on a busy machine
            y = normalize(kind, x, g)
            mean, std = set_statistics(kind, x, g)
        update_cube(state["cube"], kind, min(batch_size, 8), min(c, 16), 3, g)
        state["ax_c"].set_title(f"{LABELS[kind]}" + (f", G = {num_groups}" if g else "") + f", N = {batch_size}",
                                fontsize=10, y=1.0)  # fmt: skip
        state["pts"].set_data(mean.numpy(), std.numpy())
        ax_s = state["ax_s"]
        lo, hi = float(mean.min()), float(mean.max())
        pad = 0.1 * max(hi - lo, 0.05)
        ax_s.set_xlim(lo - pad, hi + pad)
        ax_s.set_ylim(0, 1.15 * max(float(std.max()), 1e-3))
        yn = y.numpy()
        all_h, _ = np.histogram(yn, _EDGES, density=True)
        ch0_h, _ = np.histogram(yn[:, 0], _EDGES, density=True)
        state["all"].set_data(all_h)
        state["ch0"].set_data(ch0_h)
        per_set = x.numel() // mean.numel()
        text = (f"{LABELS[kind]}: {mean.numel()} pooled sets of {per_set} values each; channel 0 after the norm: "
                f"mean {yn[:, 0].mean():+.2f}, std {yn[:, 0].std():.2f}")  # fmt: skip
        if kind != "group":
            text += " (num_groups is used by GN only)"
        return text + (f". Activations: {source}." if source else ".")

    controls = {
        "norm": Choice("norm", KINDS, "group"),
        "num_groups": Slider("num_groups (GN)", groups, default_g, static_values=(1, default_g, c)),
        "batch_size": Slider("batch size", PANEL_BATCH_SIZES, 8, static_values=(2, 8, 32)),
    }
    return Panel(controls, setup, update, figsize=(10, 3.2), dpi=80,
                 title="What each normalization pools over, on real activations")  # fmt: skip
