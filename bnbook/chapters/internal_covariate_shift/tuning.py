"""A fair baseline: each network's learning rate chosen on held-out *training* data.

Part of chapter 1, "Internal covariate shift" (``notebooks/01_internal_covariate_shift.ipynb``).
Ioffe & Szegedy's Figure 1 compares two networks that both train. A plain sigmoid MLP given
the BN network's learning rate can sit at chance for a long time, and then the "drift" one
measures is mostly the network leaving that plateau. :func:`select_lr` gives every network its
own learning rate, picked by a small sweep on a validation split of the training set
(:func:`split_validation`), so the test set never influences the choice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from torch.utils.data import DataLoader, TensorDataset

from bnbook._validate import check_positive_int, check_real
from bnbook.chapters.internal_covariate_shift.experiment import ShiftConfig, run_experiment
from bnbook.loaders import datasets_of, in_memory

__all__ = ["split_validation", "LRSweep", "select_lr"]


def split_validation(data, val_size: int = 1000) -> tuple[DataLoader, DataLoader]:
    """``(train_iter, val_iter)``: the training set without its last ``val_size`` examples, and those.

    The split is fixed (no RNG). MNIST-5k's training images are interleaved by class
    (0, 1, ..., 9, 0, 1, ...), so a multiple of 10 gives a class-balanced validation set.
    The test set is not used.

    Parameters
    ----------
    data : bnbook.data.Loaders or (train_iter, test_iter)
    val_size : int
        Examples held out (>= 1, and fewer than the training set).

    Returns
    -------
    tuple of DataLoader
        Over ``TensorDataset`` objects ``(X (N, C, H, W), y (N,))``; :func:`run_experiment`
        accepts the pair as its ``data``.
    """
    train_ds, _ = datasets_of(data)
    val_size = check_positive_int("val_size", val_size)
    if val_size >= len(train_ds):
        raise ValueError(f"val_size must be < the {len(train_ds)} training examples, got {val_size}")
    X, y = in_memory(train_ds).tensors  # (N, C, H, W), (N,)
    cut = len(y) - val_size
    return DataLoader(TensorDataset(X[:cut], y[:cut])), DataLoader(TensorDataset(X[cut:], y[cut:]))


@dataclasses.dataclass
class LRSweep:
    """Result of :func:`select_lr`.

    Attributes
    ----------
    lr : float
        The chosen learning rate.
    lrs : ndarray (K,)
        The learning rates tried.
    score : ndarray (K,)
        Mean validation accuracy over the records of each run (area under the learning
        curve: rewards fast *and* good training); 0 for a run that diverged.
    final : ndarray (K,)
        Validation accuracy at the end of each run.
    """

    lr: float
    lrs: np.ndarray
    score: np.ndarray
    final: np.ndarray

    def table(self) -> str:
        """One line per learning rate, the chosen one marked with ``<-``."""
        rows = [
            f"lr {lr:6g}: mean val. acc. {s:.3f}, final {f:.3f}" + ("  <-" if lr == self.lr else "")
            for lr, s, f in zip(self.lrs, self.score, self.final)
        ]
        return "\n".join(rows)


def select_lr(
    data,
    lrs: Sequence[float],
    config: ShiftConfig | None = None,
    *,
    val_size: int = 1000,
    **overrides,
) -> LRSweep:
    """Pick the learning rate with the best mean validation accuracy, by a sweep on training data.

    Every candidate trains on the training set minus ``val_size`` examples and is scored on
    those (:func:`split_validation`); ties go to the smaller learning rate.

    Parameters
    ----------
    data : bnbook.data.Loaders or (train_iter, test_iter)
        Only the training set is used.
    lrs : sequence of float
        Candidates (> 0).
    config : ShiftConfig, optional
        Settings of the sweep's runs (``lr`` is replaced); ``**overrides`` change fields.
    val_size : int

    Returns
    -------
    LRSweep

    Examples
    --------
    >>> from bnbook.data import load
    >>> sweep = select_lr(load("digits"), [0.1, 1.0], norm="batch", num_steps=20, val_size=300)
    >>> sweep.lr in (0.1, 1.0), sweep.score.shape
    (True, (2,))
    """
    lrs = np.array([check_real("lrs entry", v, low=0.0, low_open=True) for v in lrs], dtype=np.float64)
    if lrs.size == 0:
        raise ValueError("lrs must hold at least one learning rate")
    split = split_validation(data, val_size)
    config = (config or ShiftConfig()).replace(**overrides)
    score, final = [], []
    for lr in lrs:
        run = run_experiment(split, config, lr=float(lr))
        score.append(0.0 if run.diverged else float(np.mean(run.test_acc)))
        final.append(0.0 if run.diverged else run.final_acc)
    score = np.asarray(score)
    best = int(np.flatnonzero(score == score.max())[np.argmin(lrs[score == score.max()])])
    return LRSweep(lr=float(lrs[best]), lrs=lrs, score=score, final=np.asarray(final))
