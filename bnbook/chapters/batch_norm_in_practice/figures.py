"""The figure of section 1: which axes one BN mean/variance pools over, for BatchNorm1d/2d/3d.

Part of chapter 3, "Batch norm in practice" (``notebooks/03_batch_norm_in_practice.ipynb``).
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = ["LAYOUTS", "pooled_dims", "plot_pooled_axes"]

#: (layer, input axes) of every case of section 1.
LAYOUTS = (
    ("BatchNorm1d", ("N", "C")),
    ("BatchNorm1d", ("N", "C", "L")),
    ("BatchNorm2d", ("N", "C", "H", "W")),
    ("BatchNorm3d", ("N", "C", "D", "H", "W")),
)


def pooled_dims(ndim: int) -> tuple[int, ...]:
    """Axes a BN statistic of an ``ndim``-dimensional ``(N, C, *)`` input is taken over: all but 1."""
    if not isinstance(ndim, int) or isinstance(ndim, bool) or ndim < 2:
        raise ValueError(f"ndim must be an int >= 2 (inputs are (N, C, *)), got {ndim!r}")
    return (0,) + tuple(range(2, ndim))


def plot_pooled_axes(shapes: dict | None = None, *, figsize=(7.5, 2.8)) -> Figure:
    """One row per layout: the input's axes as boxes, pooled ones (blue) vs the kept channel axis (orange).

    ``shapes`` maps an axis letter to an example size (default N=8, C=3, L=10, D=4, H=W=5) for
    the count ``m`` of values behind each statistic, printed at the right.
    """
    sizes = {"N": 8, "C": 3, "L": 10, "D": 4, "H": 5, "W": 5}
    sizes.update(shapes or {})
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    for row, (layer, axes) in enumerate(LAYOUTS):
        y = len(LAYOUTS) - 1 - row
        for j, a in enumerate(axes):
            kept = a == "C"
            ax.add_patch(Rectangle((j, y + 0.1), 0.9, 0.8, color="tab:orange" if kept else "tab:blue",
                                   alpha=0.85 if kept else 0.55))  # fmt: skip
            ax.text(j + 0.45, y + 0.5, a, ha="center", va="center", fontsize=10, color="white" if kept else "black")
        m = math.prod(sizes[a] for a in axes if a != "C")
        pooled = " x ".join(f"{a}" for a in axes if a != "C")
        ax.text(5.3, y + 0.5, f"{layer}: one mean per C over m = {pooled} = {m}", va="center", fontsize=9)
    ax.set(xlim=(0, 11.6), ylim=(0, len(LAYOUTS)), xticks=[0.45 + j for j in range(5)],
           xticklabels=["axis 0", "axis 1", "axis 2", "axis 3", "axis 4"],
           yticks=[len(LAYOUTS) - 0.5 - r for r in range(len(LAYOUTS))],
           yticklabels=[f"({', '.join(a)})" for _, a in LAYOUTS])  # fmt: skip
    ax.set_xlabel("input axis (blue: pooled into the statistic; orange: kept, one statistic per channel)", fontsize=8)
    ax.set_ylabel("input shape")
    ax.set_title(f"What one BN mean/variance pools over (sizes {', '.join(f'{k}={v}' for k, v in sizes.items())})",
                 fontsize=10)  # fmt: skip
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0, labelsize=8)
    return fig
