"""Slider latency: bnbook.widgets.Panel versus the naive ``interact`` + pyplot pattern.

Latency = from a control's value change (assigned to the live ipywidgets object, as a
click would) to the finished redraw (figure drawn, PNG encoded, Image widget updated),
measured in the kernel process.  Target: median <= 100 ms on a 2-core laptop.

Every panel of the book is measured: each chapter module of ``bnbook.chapters`` that has a
``make_panel()`` (found by :func:`bnbook.chapters.panel_factories`, so new chapters are
measured without an edit here), built with defaults, beside a demo panel and the naive
pattern drawing the same demo.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time

import numpy as np

from bnbook.chapters import panel_factories
from bnbook.widgets import Choice, Panel, Slider, measure_latency

N_ACTIVATIONS = 4096
BINS = np.linspace(-8, 8, 65)
MEANS = [-3, -2, -1, 0, 1, 2, 3]
SCALES = [0.25, 0.5, 1.0, 2.0, 4.0]
DISTRIBUTIONS = ["normal", "uniform", "laplace"]


def _activations(mean: float, scale: float, distribution: str) -> np.ndarray:
    """(4096,) pre-normalization activations: a fixed sample, shifted and scaled."""
    rng = np.random.default_rng(0)
    if distribution == "normal":
        z = rng.standard_normal(N_ACTIVATIONS)
    elif distribution == "uniform":
        z = rng.uniform(-np.sqrt(3), np.sqrt(3), N_ACTIVATIONS)  # unit variance
    else:
        z = rng.laplace(0.0, 1 / np.sqrt(2), N_ACTIVATIONS)
    return mean + scale * z


def _normalize(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    return (x - x.mean()) / np.sqrt(x.var() + eps)  # biased variance, as BatchNorm


def _r(v: float) -> float:
    return round(float(v), 2) + 0.0  # no "-0.00" in titles


def make_demo_panel() -> Panel:
    """Histogram of 4096 activations before / after normalization (2 subplots, 9x3.2 in, dpi 80)."""

    def setup(fig):
        ax_pre, ax_post = fig.subplots(1, 2, sharey=True)
        zeros = np.zeros(len(BINS) - 1)
        pre = ax_pre.stairs(zeros, BINS, fill=True, color="tab:blue", alpha=0.7)
        post = ax_post.stairs(zeros, BINS, fill=True, color="tab:orange", alpha=0.7)
        ax_pre.set(xlabel="activation", ylabel="count", ylim=(0, 1100))
        ax_post.set(xlabel="normalized activation")
        return {"pre": pre, "post": post, "ax_pre": ax_pre, "ax_post": ax_post}

    def update(state, mean, scale, distribution):
        x = _activations(mean, scale, distribution)  # (4096,)
        x_hat = _normalize(x)
        state["pre"].set_data(np.histogram(x, BINS)[0])
        state["post"].set_data(np.histogram(x_hat, BINS)[0])
        state["ax_pre"].set_title(f"before: mean {_r(x.mean()):+.2f}, std {x.std():.2f}")
        state["ax_post"].set_title(f"after: mean {_r(x_hat.mean()):+.2f}, std {x_hat.std():.2f}")
        return f"{distribution}: {(np.abs(x) > 8).mean():.1%} of the raw activations fall outside the plot"

    controls = {
        "mean": Slider("shift", MEANS, 0),
        "scale": Slider("scale", SCALES, 1.0),
        "distribution": Choice("distribution", DISTRIBUTIONS, "normal"),
    }
    return Panel(controls, setup, update, figsize=(9, 3.2), dpi=80, title="Normalization removes shift and scale")


def measure_naive(n: int, seed: int = 0) -> dict[str, float]:
    """The ``interact`` pattern: new pyplot figure, ``hist`` twice, inline-backend PNG, close.

    ``IPython.core.pylabtools.print_figure(fig, "png", bbox_inches="tight")`` is exactly
    what the inline backend's PNG formatter runs for every displayed figure.
    """
    import ipywidgets
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure

    def f(mean, scale, distribution):
        fig, (ax_pre, ax_post) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=80, sharey=True)
        x = _activations(mean, scale, distribution)
        x_hat = _normalize(x)
        ax_pre.hist(x, BINS, color="tab:blue", alpha=0.7)
        ax_post.hist(x_hat, BINS, color="tab:orange", alpha=0.7)
        ax_pre.set(xlabel="activation", ylabel="count", ylim=(0, 1100))
        ax_post.set(xlabel="normalized activation")
        ax_pre.set_title(f"before: mean {x.mean():+.2f}, std {x.std():.2f}")
        ax_post.set_title(f"after: mean {x_hat.mean():+.2f}, std {x_hat.std():.2f}")
        print_figure(fig, "png", bbox_inches="tight")
        plt.close(fig)

    sliders = {
        "mean": ipywidgets.SelectionSlider(options=MEANS, value=0),
        "scale": ipywidgets.SelectionSlider(options=SCALES, value=1.0),
        "distribution": ipywidgets.Dropdown(options=DISTRIBUTIONS, value="normal"),
    }
    rng = np.random.default_rng(seed)
    times = []
    # without a kernel, interactive's clear_output() writes terminal escapes to stdout
    with contextlib.redirect_stdout(io.StringIO()):
        ipywidgets.interactive(f, **sliders)
        for i in range(n + 1):
            w = list(sliders.values())[rng.integers(len(sliders))]
            new = [o for o in w.options if o != w.value][rng.integers(len(w.options) - 1)]
            t0 = time.perf_counter()
            w.value = new
            if i:  # first change is a warm-up, as in measure_latency
                times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000.0
    q25, q75 = np.percentile(ms, [25, 75])
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "iqr_ms": float(q75 - q25),
        "n": n,
    }


PANEL_FACTORIES = {"demo": make_demo_panel, **panel_factories()}


def _rows(name: str, stats: dict, notes: str) -> list[dict]:
    """Two rows per panel: median (spread = interquartile range) and p95 latency."""
    return [
        {
            "name": f"widgets.{name}.median",
            "metric": "slider latency median",
            "value": round(stats["median_ms"], 1),
            "unit": "ms",
            "spread": round(stats["iqr_ms"], 1),
            "notes": f"n={stats['n']}, spread=IQR; {notes}",
        },
        {
            "name": f"widgets.{name}.p95",
            "metric": "slider latency p95",
            "value": round(stats["p95_ms"], 1),
            "unit": "ms",
            "spread": None,
            "notes": f"n={stats['n']}; {notes}",
        },
    ]


def _frames(html: str) -> dict:
    """The frames embedded in a static_html() snippet."""
    return json.loads(re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S).group(1))["frames"]


def run(quick: bool) -> list[dict]:
    """Rows {name, metric, value, unit, spread, notes} for every panel, plus the naive pattern."""
    n = 20 if quick else 100
    rows: list[dict] = []
    medians = {}
    for name, factory in PANEL_FACTORIES.items():
        panel = factory()
        stats = measure_latency(panel, n=n, seed=0)
        medians[name] = stats["median_ms"]
        rows += _rows(f"{name}.panel", stats, "bnbook.widgets.Panel (reused Agg figure, Pillow PNG)")
        if name == "demo" or not quick:  # chapter panels may be slow to pre-render: full runs only
            t0 = time.perf_counter()
            html = panel.static_html()
            seconds = time.perf_counter() - t0
            frames = len(_frames(html))
            rows.append(
                {
                    "name": f"widgets.{name}.static_html",
                    "metric": "static HTML size",
                    "value": round(len(html.encode()) / 1e6, 3),
                    "unit": "MB",
                    "spread": None,
                    "notes": f"{frames} frames (palette PNG), pre-rendered in {seconds:.1f} s",
                }
            )
    naive = measure_naive(n, seed=0)
    rows += _rows("demo.naive", naive, "ipywidgets.interactive + pyplot + inline print_figure (the naive pattern)")
    rows.append(
        {
            "name": "widgets.demo.speedup",
            "metric": "naive / Panel median latency",
            "value": round(naive["median_ms"] / medians["demo"], 1),
            "unit": "x",
            "spread": None,
            "notes": "same run, same machine",
        }
    )
    return rows


if __name__ == "__main__":  # pragma: no cover
    for row in run(quick=True):
        print(row)
