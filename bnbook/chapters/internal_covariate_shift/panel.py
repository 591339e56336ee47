"""Chapter 1's slider panel: the inputs to the sigmoids of every layer during training.

Part of chapter 1, "Internal covariate shift" (``notebooks/01_internal_covariate_shift.ipynb``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
from matplotlib.ticker import MaxNLocator

from bnbook._validate import check_positive_int, check_real
from bnbook.chapters.internal_covariate_shift.experiment import ShiftConfig, ShiftRun, load_data, run_experiment
from bnbook.widgets import Panel, Slider, Toggle

__all__ = ["PANEL_LRS", "PANEL_SCALES", "make_panel"]

PANEL_LRS = (0.1, 1.0, 10.0)
PANEL_SCALES = (0.5, 1.0, 4.0)
_LAYER_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
_STEP_COLORS = ("#440154", "#31688e", "#35b779", "#c8a800")  # viridis: early (dark) -> late (bright)


def make_panel(
    quick: bool = True,
    *,
    data=None,
    lrs: Sequence[float] = PANEL_LRS,
    init_scales: Sequence[float] = PANEL_SCALES,
    num_steps: Optional[int] = None,
    precompute: bool = True,
    seed: int = 0,
):
    """Slider panel: how the inputs to the sigmoids of every layer evolve during training.

    Controls: learning rate, weight-init scale and BN on/off choose a training run; "layer"
    chooses the hidden layer of the histogram (a redraw only). Left: histograms of that
    layer's sigmoid inputs at four training steps, with the saturated region
    (``|x| > 4``, where ``sigmoid' < 0.018``) shaded and the mass beyond the axis printed at
    its edges; middle: median and 15th-85th percentile band of every layer over training
    (selected layer highlighted); right: test accuracy with and without BN at this learning
    rate and init scale. A run whose loss blows up is drawn up to that step, with a message.

    Parameters
    ----------
    quick : bool, default True
        300 steps per run (2000 otherwise), test accuracy on at most 500 test examples
        (5000 otherwise) and histograms of 250 (500) probe examples.
    data : Loaders, optional
        Default :func:`load_data`.
    lrs, init_scales : sequences of float
        Slider values; the runs are the grid ``lrs x init_scales x {no BN, BN}``.
    num_steps : int, optional
        Overrides the run length.
    precompute : bool, default True
        Train the whole grid now (seconds in quick mode), so that no slider move retrains:
        every change is a redraw. With False, a run is trained the first time its values
        are chosen and then cached; its sliders update on release (``continuous_update=False``).
    seed : int

    Returns
    -------
    bnbook.widgets.Panel
    """
    num_steps = (300 if quick else 2000) if num_steps is None else check_positive_int("num_steps", num_steps)
    lrs = tuple(check_real("lrs entry", v, low=0.0, low_open=True) for v in lrs)
    init_scales = tuple(check_real("init_scales entry", v, low=0.0, low_open=True) for v in init_scales)
    if not lrs or not init_scales:
        raise ValueError("lrs and init_scales must each hold at least one value")
    seed = check_positive_int("seed", seed, minimum=0)
    if data is None:
        data = load_data()
    hist_steps = sorted({0, num_steps // 30, num_steps // 6, num_steps})
    runs: dict[tuple[float, float, bool], ShiftRun] = {}
    base = ShiftConfig(
        num_steps=num_steps, seed=seed, record_every=max(1, num_steps // 30), record_steps=tuple(hist_steps),
        probe_size=250 if quick else 500, eval_size=500 if quick else 5000, bins=48, hist_range=(-12.0, 12.0),
    )  # fmt: skip

    def get(lr: float, scale: float, bn: bool) -> ShiftRun:
        key = (lr, scale, bn)
        if key not in runs:
            runs[key] = run_experiment(data, base, norm="batch" if bn else "none", lr=lr, init_scale=scale)
        return runs[key]

    if precompute:
        for lr in lrs:
            for scale in init_scales:
                for bn in (False, True):
                    get(lr, scale, bn)
    first = get(lrs[len(lrs) // 2], init_scales[len(init_scales) // 2], False)
    num_layers = first.hist.shape[0]
    edges = first.edges

    def setup(fig):
        # Drawing cost matters (the target is <= 100 ms per slider move on 2 cores): fixed ticks
        # where possible, coloured text labels instead of legends, titles at a fixed height.
        ax_h, ax_p, ax_a = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.2, 0.8]})
        ticks = MaxNLocator(4, steps=[1, 2, 5, 10], integer=True).tick_values(0, num_steps)
        step_ticks = [t for t in ticks if 0 <= t <= num_steps]
        zeros = np.zeros(edges.size - 1)
        stairs = []
        for i, s in enumerate(hist_steps):
            c = _STEP_COLORS[i % len(_STEP_COLORS)]
            stairs.append(ax_h.stairs(zeros, edges, color=c, lw=1.5))
            ax_h.text(0.98, 0.94 - 0.08 * i, f"step {s}", color=c, fontsize=8, ha="right", transform=ax_h.transAxes)
        ax_h.axvspan(edges[0], -4, color="0.92", zorder=0, lw=0)
        ax_h.axvspan(4, edges[-1], color="0.92", zorder=0, lw=0)
        out_lo = ax_h.text(0.01, 0.5, "", transform=ax_h.transAxes, fontsize=8, color="#b00020")
        out_hi = ax_h.text(0.99, 0.3, "", transform=ax_h.transAxes, fontsize=8, color="#b00020", ha="right")
        ax_h.set(xlim=(edges[0], edges[-1]), xticks=np.arange(edges[0], edges[-1] + 1, 4), yticks=[],
                 xlabel="input to sigmoid (grey: saturated, |x| > 4)", ylabel="density")
        ax_h.set_title(" ", y=1.0)
        x = first.steps.astype(float)
        bands, medians = [], []
        for k in range(num_layers):
            c = _LAYER_COLORS[k % len(_LAYER_COLORS)]
            bands.append(ax_p.fill_between(x, 0 * x, 0 * x, color=c, lw=0))
            medians.append(ax_p.plot(x, 0 * x, color=c)[0])
            ax_p.text(0.02 + 0.16 * k, 0.94, f"layer {k + 1}", color=c, fontsize=8, transform=ax_p.transAxes)
        ax_p.set(xticks=step_ticks, xlim=(0, num_steps), xlabel="training step",
                 ylabel="15th / 50th / 85th percentile")
        ax_p.set_title("sigmoid inputs, every layer", y=1.0)
        ax_p.locator_params(axis="y", nbins=5)
        acc = {bn: ax_a.plot([], [], color="black" if bn else "0.5", ls="-" if bn else "--")[0] for bn in (False, True)}
        ax_a.text(0.97, 0.42, "with BN", color="black", fontsize=8, ha="right", transform=ax_a.transAxes)
        ax_a.text(0.97, 0.34, "without BN (dashed)", color="0.4", fontsize=8, ha="right", transform=ax_a.transAxes)
        ax_a.set(xticks=step_ticks, xlim=(0, num_steps), ylim=(0, 1.02), yticks=[0, 0.5, 1],
                 xlabel="training step", ylabel="test accuracy")
        ax_a.set_title("test accuracy", y=1.0)
        for ax in (ax_h, ax_p, ax_a):
            ax.grid(alpha=0.3)
        return dict(ax_h=ax_h, ax_p=ax_p, stairs=stairs, out=(out_lo, out_hi), bands=bands, medians=medians,
                    acc=acc)

    def update(state, lr, init_scale, bn, layer):
        run = get(lr, init_scale, bn)
        li = min(int(layer), num_layers) - 1
        last = run.steps.size - 1
        top = 0.05
        for art, s in zip(state["stairs"], hist_steps):
            hit = np.nonzero(run.steps == s)[0]
            art.set_visible(bool(hit.size))  # steps after a divergence do not exist
            if hit.size:
                h = run.hist[li, hit[0]]
                art.set_data(h)
                top = max(top, float(h.max()))
        below, above = run.outside[li, last]
        state["out"][0].set_text(f"< {edges[0]:g}:\n{below:.0%}" if below >= 0.005 else "")
        state["out"][1].set_text(f"> {edges[-1]:g}:\n{above:.0%}" if above >= 0.005 else "")
        ax_h = state["ax_h"]
        ax_h.set_ylim(0, top * 1.15)
        ax_h.set_title(f"layer {li + 1}: lr {lr:g}, init x{init_scale:g}, {'with' if bn else 'without'} BN",
                       color="#b00020" if run.diverged else "black")
        x = run.steps.astype(float)
        lo, hi = np.inf, -np.inf
        for k, (band, med) in enumerate(zip(state["bands"], state["medians"])):
            p = run.layer_percentiles[k]  # (T, 3)
            band.set_verts([np.column_stack([np.r_[x, x[::-1]], np.r_[p[:, 0], p[::-1, 2]]])])
            med.set_data(x, p[:, 1])
            sel = k == li
            band.set_alpha(0.35 if sel else 0.08)
            med.set_linewidth(2.2 if sel else 0.8)
            lo, hi = min(lo, float(p[:, 0].min())), max(hi, float(p[:, 2].max()))
        pad = 0.05 * max(hi - lo, 1e-3)
        state["ax_p"].set_ylim(lo - pad, hi + pad)
        for b, line in state["acc"].items():
            r = runs.get((lr, init_scale, b))
            line.set_data(([], []) if r is None else (r.steps, r.test_acc))
            line.set_linewidth(2.4 if b == bn else 1.0)
        p = run.layer_percentiles[li, last]
        text = (f"layer {li + 1}, step {int(run.steps[last])}: percentiles 15/50/85 = "
                f"{p[0]:.2f} / {p[1]:.2f} / {p[2]:.2f}; test accuracy {run.final_acc:.2f}")
        if run.diverged:
            text = (f"Diverged at step {run.diverged_at}: the loss exceeded {run.config['max_loss']:.0f} "
                    f"(10x that of guessing); lower the learning rate or the init scale. " + text)
        return text

    controls = {
        "lr": Slider("learning rate", lrs, lrs[len(lrs) // 2], continuous_update=False),
        "init_scale": Slider("init scale", init_scales, init_scales[len(init_scales) // 2], continuous_update=False),
        "bn": Toggle("batch norm", False),
        "layer": Slider("layer", tuple(range(1, num_layers + 1)), num_layers),
    }
    return Panel(controls, setup, update, figsize=(11, 3.4), dpi=80,
                 title="Inputs to the sigmoids of the 3x100 MLP during training")
