"""Summaries of chapter 1's runs: percentile drift, the loss landscape compared, mean +- std.

Part of chapter 1, "Internal covariate shift" (``notebooks/01_internal_covariate_shift.ipynb``).
Pure NumPy on the arrays of a :class:`~bnbook.chapters.internal_covariate_shift.ShiftRun`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

from bnbook._validate import check_positive_int, check_real

__all__ = ["percentile_drift", "loss_variation", "compare_landscapes", "match_by_loss", "mean_std"]


def percentile_drift(steps: np.ndarray, percentiles: np.ndarray, *, after: float = 0.1, start: int = 0) -> dict:
    """How much a (T, 3) array of 15/50/85th percentiles moves during training.

    Only steps >= ``max(after * steps[-1], start)`` count (the first moments of training are
    excluded, as in Ioffe & Szegedy's plots, which start at 10k steps; ``start`` can exclude a
    plateau at chance level as well). If fewer than two records remain, the last two count.
    Returns ``median_range`` (max - min of the median), ``median_jump`` (mean |change| of the
    median between consecutive records), ``spread_range`` (max - min of the 85th - 15th
    spread) and ``from_step`` (the first step that counted).
    """
    steps = np.asarray(steps, dtype=np.float64)
    p = np.asarray(percentiles, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] != steps.size or steps.size < 2:
        raise ValueError(f"need steps (T,) and percentiles (T, 3) with T >= 2, got {steps.shape} and {p.shape}")
    check_real("after", after, low=0.0)
    start = check_positive_int("start", start, minimum=0)
    keep = steps >= max(after * steps[-1], start)
    p, s = (p[keep], steps[keep]) if keep.sum() >= 2 else (p[-2:], steps[-2:])
    med, spread = p[:, 1], p[:, 2] - p[:, 0]
    return {
        "median_range": float(med.max() - med.min()),
        "median_jump": float(np.abs(np.diff(med)).mean()),
        "spread_range": float(spread.max() - spread.min()),
        "from_step": int(s[0]),
    }


def loss_variation(landscape: dict) -> np.ndarray:
    """Range of the loss over the step sizes and ``eta = 0``, at every measurement: ``(M,)``."""
    losses = np.column_stack([landscape["loss0"], landscape["loss"]])  # (M, 1 + E)
    return np.ptp(losses, axis=1)


def _measures(landscape: dict) -> dict:
    return {
        "loss_variation": loss_variation(landscape),
        "grad_change": np.nanmax(landscape["grad_change"], axis=1),  # (M,) max over eta
        "beta": np.nanmax(landscape["beta"], axis=1),  # (M,)
    }


def compare_landscapes(a: dict, b: dict) -> dict:
    """Compare two landscapes measured at the same steps, measure by measure: ``b`` against ``a``.

    For each of ``loss_variation`` (:func:`loss_variation`), ``grad_change`` (max over the
    step sizes of the gradient change, "gradient predictiveness") and ``beta`` (max over the
    step sizes of the effective beta-smoothness), returns ``{"factor": median of b / a,
    "b_higher": fraction of the measurements where b's value is larger, "n": pairs}``.
    A factor below 1 means ``b`` is smoother by that measure.
    """
    sa, sb = np.asarray(a["steps"]), np.asarray(b["steps"])
    if sa.shape != sb.shape or not np.array_equal(sa, sb):
        raise ValueError("the two landscapes must be measured at the same steps")
    ma, mb = _measures(a), _measures(b)
    out = {}
    for name in ma:
        ok = np.isfinite(ma[name]) & np.isfinite(mb[name]) & (ma[name] > 0) & (mb[name] > 0)
        ratio = mb[name][ok] / ma[name][ok]
        out[name] = {
            "factor": float(np.median(ratio)) if ok.any() else float("nan"),
            "b_higher": float(np.mean(ratio > 1)) if ok.any() else float("nan"),
            "n": int(ok.sum()),
        }
    return out


def match_by_loss(a: dict, b: dict, *, min_pairs: int = 3) -> tuple[int, Optional[float]]:
    """Loss variation of ``b`` against ``a`` at (approximately) equal training progress.

    Every measurement of ``b`` whose batch loss lies inside the range of ``a``'s batch losses
    is paired with the measurement of ``a`` with the nearest batch loss (on a log scale).
    Returns the number of pairs and the median of ``variation_b / variation_a`` over them,
    or ``(pairs, None)`` when there are fewer than ``min_pairs``.
    """
    min_pairs = check_positive_int("min_pairs", min_pairs)
    la, lb = np.log10(a["loss0"]), np.log10(b["loss0"])
    inside = (lb >= la.min()) & (lb <= la.max())
    if inside.sum() < min_pairs:
        return int(inside.sum()), None
    nearest = np.abs(la[None, :] - lb[inside][:, None]).argmin(axis=1)
    ratio = loss_variation(b)[inside] / loss_variation(a)[nearest]
    return int(inside.sum()), float(10 ** np.median(np.log10(ratio)))


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``"mean +- sample std (n)"`` with ``ddof=1``; a single value is printed alone, without a +-."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    digits = check_positive_int("digits", digits, minimum=0)
    if v.size == 1:
        return f"{v[0]:.{digits}f} (1 seed)"
    return f"{v.mean():.{digits}f} +- {v.std(ddof=1):.{digits}f} ({v.size} seeds)"
