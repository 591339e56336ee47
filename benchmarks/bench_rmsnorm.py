"""RMSNorm vs LayerNorm: forward + backward time, from scratch and in torch (chapter 4).

Chapter 4 ("LayerNorm, InstanceNorm, GroupNorm and RMSNorm") states that RMSNorm is cheaper than
LayerNorm because it skips the mean and the bias (Zhang & Sennrich 2019 report 7-64 % faster
training). Measured with :func:`bnbook.chapters.layer_instance_group_norm.time_norms`: a
(tokens, d) activation, interleaved rounds, the median of individually timed steps, one thread.
Rows: time per call of every variant, and the LN/RMS time ratio for each implementation.
"""

from __future__ import annotations

import statistics

from bnbook.chapters.layer_instance_group_norm import time_norms


def run(quick: bool) -> list[dict]:
    shape = (1024, 256) if quick else (4096, 512)
    times = time_norms(shape, rounds=3 if quick else 7, steps=10 if quick else 30)
    rows = []
    for name, values in times.items():
        q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
        rows.append(
            {
                "name": f"{name} fwd+bwd {shape[0]}x{shape[1]}",
                "metric": "time",
                "value": 1e3 * statistics.median(values),
                "unit": "ms",
                "spread": f"IQR {1e3 * q[0]:.3g}-{1e3 * q[2]:.3g}",
                "notes": "",
            }
        )
    for impl in ("scratch", "torch", "bnbook"):
        if f"{impl} LN" in times:
            ratios = [a / b for a, b in zip(times[f"{impl} LN"], times[f"{impl} RMS"])]
            rows.append({"name": f"{impl} LN / RMS time ratio", "metric": "ratio", "value": statistics.median(ratios),
                         "unit": "x", "spread": f"{min(ratios):.2f}-{max(ratios):.2f}",
                         "notes": "> 1: RMSNorm is faster" if impl == "torch" else ""})  # fmt: skip
    return rows
