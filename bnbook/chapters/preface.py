"""Chapter 0, the preface: its demo panel (normalization undoes shift and scale, until scale^2 meets eps).

Code of ``notebooks/00_preface.ipynb``, the first slider panel of the book.
"""

from __future__ import annotations

import numpy as np
import torch

from bnbook._validate import check_eps
from bnbook.widgets import Panel, Slider

__all__ = ["standardize", "make_panel"]

SHIFTS = (-10.0, -3.0, 0.0, 3.0, 10.0)
SCALES = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)
EPSILONS = (1e-5, 1e-3, 1e-1)


def standardize(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(x - mean) / sqrt(biased var + eps) over all elements of a 1-D tensor ``x`` of shape (N,)."""
    eps = check_eps(eps)
    if x.dim() != 1 or x.numel() < 2:
        raise ValueError(f"x must be a 1-D tensor with at least 2 elements, got shape {tuple(x.shape)}")
    var, mean = torch.var_mean(x, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


#: Fixed input axis of the panel's left plot: a shift or a rescaling moves or widens the histogram.
X_LIM = (-20.0, 40.0)
#: Fixed output axis of the right plot (a standardized Gamma(2, 1) sample lies in about [-1.5, 7]).
Y_LIM = (-3.0, 7.0)


def _note_beyond(ax, text: str):
    return ax.text(0.98, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize=8, color="#b00020")


def make_panel(num_samples: int = 4096, seed: int = 0) -> Panel:
    """Sliders for shift t, scale s and eps over x = s * z + t with z a fixed Gamma(2, 1) sample.

    Both plots keep a fixed horizontal axis, so moving a slider moves or reshapes a histogram
    visibly; their vertical axes follow the tallest bar (a collapsed output is a tall spike), and
    the share of values beyond a horizontal axis is printed in the plot.
    """
    # A private generator: the panel is the same in every run, and the global RNG is untouched.
    z = torch.from_numpy(np.random.default_rng(seed).gamma(2.0, 1.0, num_samples))  # (N,) float64
    in_edges = np.linspace(*X_LIM, 121)  # 0.5 wide
    out_edges = np.linspace(*Y_LIM, 81)  # 0.125 wide

    def setup(fig):
        ax_in, ax_out = fig.subplots(1, 2)
        bars = {}
        for ax, edges, color, key in ((ax_in, in_edges, "tab:blue", "in"), (ax_out, out_edges, "tab:orange", "out")):
            # One StepPatch per histogram (not one Rectangle per bar): a redraw stays far below 100 ms.
            bars[key] = ax.stairs(np.zeros(len(edges) - 1), edges, fill=True, color=color)
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylabel("fraction of the sample per bin", fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
        ax_in.set_title("input x = s·z + t", fontsize=10)
        ax_in.set_xlabel(f"x (axis fixed at [{X_LIM[0]:g}, {X_LIM[1]:g}])", fontsize=9)
        ax_out.set_title(" ", fontsize=10)
        ax_out.set_xlabel("output", fontsize=9)
        notes = {"in": _note_beyond(ax_in, ""), "out": _note_beyond(ax_out, "")}
        return {"axes": {"in": ax_in, "out": ax_out}, "bars": bars, "notes": notes}

    def draw(state, key: str, values: np.ndarray, edges: np.ndarray) -> None:
        counts, _ = np.histogram(values, bins=edges)
        fractions = counts / len(values)
        state["bars"][key].set_data(fractions)
        state["axes"][key].set_ylim(0, max(float(fractions.max()), 0.02) * 1.15)
        beyond = 1.0 - counts.sum() / len(values)
        state["notes"][key].set_text(f"{beyond:.0%} beyond the axis" if beyond >= 0.005 else "")

    def update(state, shift, scale, eps):
        x = scale * z + shift  # (N,)
        y = standardize(x, eps=eps)  # (N,)
        draw(state, "in", x.numpy(), in_edges)
        draw(state, "out", y.numpy(), out_edges)
        state["axes"]["out"].set_title(f"standardized: (x − mean) / sqrt(var + {eps:.0e})", fontsize=10)
        ratio = (scale * z).var(unbiased=False).item() / eps
        return (
            f"input mean {x.mean():.3g}, std {x.std(unbiased=False):.3g};  output std "
            f"{y.std(unbiased=False):.3f};  Var(x)/eps = {ratio:.3g}"
        )

    controls = {
        "shift": Slider("shift t", SHIFTS, 0.0),
        "scale": Slider("scale s", SCALES, 1.0, fmt="{:g}"),
        "eps": Slider("eps", EPSILONS, 1e-5, fmt="{:.0e}"),
    }
    return Panel(controls, setup, update, figsize=(9, 3.2), title="Normalization undoes shift and scale")
