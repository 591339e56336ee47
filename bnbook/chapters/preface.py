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


def make_panel(num_samples: int = 4096, seed: int = 0) -> Panel:
    """Sliders for shift t, scale s and eps over x = s * z + t with z a fixed Gamma(2, 1) sample."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.distributions.Gamma(2.0, 1.0).sample((num_samples,)).double()
    z = z[torch.randperm(num_samples, generator=generator)]  # (N,)

    # x = s * z + t has the histogram of z with relabelled bin edges: compute it once and only
    # move the bars on a slider change (this keeps a redraw well under 100 ms).
    in_counts, z_edges = np.histogram(z.numpy(), bins=45)
    out_edges = np.linspace(-3, 6, 46)

    def setup(fig):
        ax_in, ax_out = fig.subplots(1, 2)
        ax_in.set_title("input x = s·z + t")
        ax_in.set_xlabel("x")
        ax_in.set_ylabel("count")
        bars_in = ax_in.bar(z_edges[:-1], in_counts, width=np.diff(z_edges), align="edge")
        ax_in.set_ylim(0, in_counts.max() * 1.1)
        ax_out.set_title("standardized (x − mean) / sqrt(var + eps)")
        ax_out.set_xlabel("output")
        ax_out.set_xlim(out_edges[0], out_edges[-1])
        bars_out = ax_out.bar(out_edges[:-1], np.zeros(len(out_edges) - 1), width=np.diff(out_edges),
                              align="edge", color="tab:orange")
        ax_out.set_ylim(0, num_samples * 0.3)
        return {"ax_in": ax_in, "bars_in": bars_in, "bars_out": bars_out}

    def update(state, shift, scale, eps):
        x = scale * z + shift  # (N,)
        y = standardize(x, eps=eps)
        edges = scale * z_edges + shift
        for bar, left, width in zip(state["bars_in"], edges[:-1], np.diff(edges)):
            bar.set_x(left)
            bar.set_width(width)
        state["ax_in"].set_xlim(edges[0], edges[-1])
        counts, _ = np.histogram(y.numpy(), bins=out_edges)
        for bar, count in zip(state["bars_out"], counts):
            bar.set_height(count)
        ratio = (scale * z).var(unbiased=False).item() / eps
        return (f"input mean {x.mean():.3g}, std {x.std(unbiased=False):.3g};  output std "
                f"{y.std(unbiased=False):.3f};  Var(x)/eps = {ratio:.3g}")

    controls = {
        "shift": Slider("shift t", SHIFTS, 0.0),
        "scale": Slider("scale s", SCALES, 1.0, fmt="{:g}"),
        "eps": Slider("eps", EPSILONS, 1e-5, fmt="{:.0e}"),
    }
    return Panel(controls, setup, update, figsize=(9, 3.2), title="Normalization undoes shift and scale")
