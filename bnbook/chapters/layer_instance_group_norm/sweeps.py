"""The chapter's two sweeps: test error against batch size, and against the number of groups.

Part of chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm"
(``notebooks/04_layer_instance_group_norm.ipynb``).  Small-scale versions of Wu & He (2018),
Fig. 1 (ResNet-50 on ImageNet, BN vs GN at 32 to 2 images per GPU) and Table 3 (GN with
G = 64 ... 1 groups), with the paper's numbers kept beside ours in :data:`PAPER_BATCH` and
:data:`PAPER_GROUPS`.  Every setting is run for several seeds with the *same* seeds, and the
*same number of examples seen* at every batch size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from bnbook._validate import check_positive_int
from bnbook.chapters.layer_instance_group_norm.cnn import CNN_NORMS, small_cnn, test_error, train_cnn

__all__ = ["PAPER_BATCH", "PAPER_GROUPS", "Sweep", "batch_size_sweep", "groups_sweep", "divisors", "mean_std"]

#: Wu & He (2018), Fig. 1 / Table 4: ResNet-50 ImageNet top-1 validation error (%) per batch size per GPU.
PAPER_BATCH = {
    "batch": {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7},
    "group": {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1},
}
#: Wu & He (2018), Table 3 (top row, batch 32): error (%) with G groups; G = 1 is LN.
PAPER_GROUPS = {64: 24.6, 32: 24.1, 16: 24.6, 8: 24.4, 4: 24.6, 2: 24.7, 1: 25.3}
#: Table 3 (bottom row): error (%) with a fixed number of channels per group; 1 channel per group is IN.
PAPER_CHANNELS_PER_GROUP = {64: 24.4, 32: 24.5, 16: 24.2, 8: 24.3, 4: 24.8, 2: 25.6, 1: 28.4}


def divisors(n: int) -> tuple[int, ...]:
    """The divisors of ``n`` in increasing order, e.g. ``divisors(16) == (1, 2, 4, 8, 16)``."""
    n = check_positive_int("n", n)
    return tuple(d for d in range(1, n + 1) if n % d == 0)


def mean_std(values) -> str:
    """``"mean ± sample std"`` (ddof=1) in percent of fractions, e.g. ``"12.3 ± 0.4"``; one value: no ±."""
    v = 100 * np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("values is empty")
    if v.size == 1:
        return f"{v[0]:.1f} (1 seed)"
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}"


@dataclass
class Sweep:
    """Test errors (fractions) of a sweep: ``errors[row, column, seed]``.

    ``rows`` are the normalizations (or a single "group" row), ``columns`` the swept values.
    """

    rows: tuple[str, ...]
    columns: tuple[int, ...]
    seeds: tuple[int, ...]
    errors: np.ndarray
    seconds: float = 0.0
    notes: dict = field(default_factory=dict)

    def mean(self) -> np.ndarray:
        return self.errors.mean(-1)

    def std(self) -> np.ndarray:
        """Sample standard deviation over seeds (ddof=1); NaN with one seed."""
        if len(self.seeds) < 2:
            return np.full(self.errors.shape[:2], np.nan)
        return self.errors.std(-1, ddof=1)

    def cell(self, row: str, column: int) -> str:
        return mean_std(self.errors[self.rows.index(row), self.columns.index(column)])

    def best(self, row: str) -> int:
        """The column value with the lowest mean error of ``row``."""
        return self.columns[int(np.argmin(self.mean()[self.rows.index(row)]))]


def _run(norm, X, y, Xt, yt, *, batch_size, examples, seed, width, num_groups, base_lr) -> float:
    net = small_cnn(norm, width=width, num_groups=num_groups, image_size=X.shape[-1], in_channels=X.shape[1], seed=seed)
    try:
        train_cnn(net, X, y, batch_size=batch_size, examples=examples, seed=seed, base_lr=base_lr)
    except FloatingPointError:
        return 0.9  # diverged: chance level for 10 classes
    return test_error(net, Xt, yt)


def _check_common(X: Tensor, Xt: Tensor, seeds) -> tuple[int, ...]:
    for name, t in (("X", X), ("Xt", Xt)):
        if not isinstance(t, Tensor) or t.dim() != 4:
            raise ValueError(f"{name} must be a tensor of images (N, C, H, W), got {getattr(t, 'shape', type(t))}")
    seeds = tuple(check_positive_int("seeds entry", s, minimum=0) for s in seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    return seeds


def batch_size_sweep(
    X: Tensor,
    y: Tensor,
    Xt: Tensor,
    yt: Tensor,
    *,
    norms=("batch", "group", "layer", "none"),
    batch_sizes=(2, 4, 8, 16, 32),
    seeds=(0, 1, 2),
    examples: int = 6000,
    width: int = 16,
    num_groups: int = 4,
    base_lr: float = 0.1,
) -> Sweep:
    """Test error of :func:`small_cnn` for every norm x batch size x seed, ``examples`` seen each."""
    seeds = _check_common(X, Xt, seeds)
    norms = tuple(norms)
    for n in norms:
        if n not in CNN_NORMS:
            raise ValueError(f"norms entry {n!r} is not one of {list(CNN_NORMS)}")
    batch_sizes = tuple(check_positive_int("batch_sizes entry", b) for b in batch_sizes)
    t0 = time.perf_counter()
    err = np.zeros((len(norms), len(batch_sizes), len(seeds)))
    for i, norm in enumerate(norms):
        for j, b in enumerate(batch_sizes):
            for k, s in enumerate(seeds):
                err[i, j, k] = _run(norm, X, y, Xt, yt, batch_size=b, examples=examples, seed=s, width=width,
                                    num_groups=num_groups, base_lr=base_lr)  # fmt: skip
    return Sweep(norms, batch_sizes, seeds, err, time.perf_counter() - t0, {"examples": examples, "width": width})


def groups_sweep(
    X: Tensor,
    y: Tensor,
    Xt: Tensor,
    yt: Tensor,
    *,
    groups=None,
    seeds=(0, 1, 2),
    batch_size: int = 32,
    examples: int = 6000,
    width: int = 16,
    base_lr: float = 0.1,
) -> Sweep:
    """Test error of the GN network for every number of groups (default: the divisors of ``width``)."""
    seeds = _check_common(X, Xt, seeds)
    width = check_positive_int("width", width)
    groups = divisors(width) if groups is None else tuple(check_positive_int("groups entry", g) for g in groups)
    for g in groups:
        if width % g:
            raise ValueError(f"groups entry {g} does not divide width ({width})")
    t0 = time.perf_counter()
    err = np.zeros((1, len(groups), len(seeds)))
    for j, g in enumerate(groups):
        for k, s in enumerate(seeds):
            err[0, j, k] = _run("group", X, y, Xt, yt, batch_size=batch_size, examples=examples, seed=s, width=width,
                                num_groups=g, base_lr=base_lr)  # fmt: skip
    return Sweep(("group",), groups, seeds, err, time.perf_counter() - t0, {"examples": examples, "width": width})
