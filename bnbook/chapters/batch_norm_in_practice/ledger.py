"""Verdicts computed from several seeds, and the claims ledger that collects them.

Part of chapter 3, "Batch norm in practice" (``notebooks/03_batch_norm_in_practice.ipynb``),
section 5.  A claim "A is better than B" is *supported* when the mean difference exceeds ``z``
standard errors (Welch: ``se = sqrt(s_A^2 / n_A + s_B^2 / n_B)`` with sample standard
deviations), *not supported* when it is that far the other way, and *not resolved* in between;
a claim tested under several conditions that disagree *depends*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bnbook._validate import check_real

__all__ = ["VERDICTS", "mean_std", "verdict", "combine", "ledger_markdown"]

VERDICTS = ("supported", "not supported", "not resolved", "depends")


def _values(name: str, values) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if a.size < 2:
        raise ValueError(f"{name} needs at least 2 values (seeds) for a sample std, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf: {a.tolist()}")
    return a


def mean_std(values, digits: int = 3) -> str:
    """``"mean ± sample std"`` of at least two values (ddof=1)."""
    a = _values("values", values)
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


def verdict(a, b, *, higher_is_better: bool = True, z: float = 2.0) -> str:
    """Is ``a`` (e.g. with BN, one value per seed) better than ``b``? See the module docstring."""
    a, b = _values("a", a), _values("b", b)
    z = check_real("z", z, low=0.0, low_open=True)
    diff = a.mean() - b.mean()
    if not higher_is_better:
        diff = -diff
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    if diff > z * se and diff > 0:
        return "supported"
    if diff < -z * se and diff < 0:
        return "not supported"
    return "not resolved"


def combine(verdicts: Sequence[str]) -> str:
    """One verdict for a claim tested under several conditions: theirs if they agree, else "depends"."""
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("verdicts is empty")
    for v in verdicts:
        if v not in VERDICTS:
            raise ValueError(f"unknown verdict {v!r}; expected one of {list(VERDICTS)}")
    return verdicts[0] if len(set(verdicts)) == 1 else "depends"


def ledger_markdown(rows: Sequence[dict]) -> str:
    """A Markdown table of rows ``{"claim", "experiment", "with BN", "without BN", "verdict"}``."""
    cols = ("claim", "experiment", "with BN", "without BN", "verdict")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        missing = [c for c in cols if c not in row]
        if missing:
            raise ValueError(f"ledger row {row!r} lacks {missing}")
        cells = [str(row[c]).replace("|", "\\|") for c in cols]
        cells[-1] = f"**{cells[-1]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
