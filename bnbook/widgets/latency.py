"""How long a reader waits after moving a control: :func:`measure_latency` of a live panel.

Chapters 1 and 2 print it under their panels; ``benchmarks/bench_widgets.py`` compares it
with the naive ``interact`` + pyplot pattern.  Introduced with chapter 1's panel
(``notebooks/01_internal_covariate_shift.ipynb``).
"""

from __future__ import annotations

import random
import time

import numpy as np

from .panel import Panel, check_count

__all__ = ["measure_latency"]


def measure_latency(panel: Panel, n: int = 50, seed: int = 0) -> dict[str, float]:
    """Time ``n`` random control changes, each from value change to finished redraw.

    Each step picks a random control and a different random value and assigns it to the
    live ``ipywidgets`` control (as a reader's click would), so the observer, update(),
    canvas draw, PNG encode and the Image widget update are all inside the timing.  One
    untimed warm-up change comes first; the initial values are restored afterwards.

    Returns
    -------
    dict
        ``{"median_ms", "p95_ms", "iqr_ms", "mean_ms", "max_ms", "n"}`` (milliseconds).
    """
    if not isinstance(panel, Panel):
        raise TypeError(f"measure_latency() expects a bnbook.widgets.Panel, got {type(panel).__name__}")
    n = check_count("n", n)
    panel.widget()
    widgets = panel._live.controls
    rng = random.Random(seed)
    movable = [name for name, spec in panel.controls.items() if len(spec._options()) > 1]
    if not movable:
        raise ValueError("measure_latency: every control has a single value; nothing to change")
    start = panel.values

    def step() -> float:
        name = rng.choice(movable)
        w = widgets[name]
        options = [v for v in panel.controls[name]._options() if v != w.value]
        new = rng.choice(options)
        t0 = time.perf_counter()
        w.value = new
        return time.perf_counter() - t0

    try:
        step()  # warm-up (font cache, first tight_layout)
        times = np.array([step() for _ in range(n)]) * 1000.0
    finally:
        panel.set(**start)
    q25, q75 = np.percentile(times, [25, 75])
    return {
        "median_ms": float(np.median(times)),
        "p95_ms": float(np.percentile(times, 95)),
        "iqr_ms": float(q75 - q25),
        "mean_ms": float(times.mean()),
        "max_ms": float(times.max()),
        "n": n,
    }
