"""Chapter 1, "Internal covariate shift": what the hypothesis claims, and tests of it.

Code of ``notebooks/01_internal_covariate_shift.ipynb``, on the 3x100 sigmoid MLP of Ioffe &
Szegedy (2015) (:func:`bnbook.models.ioffe_mlp`):

* :mod:`.noisy`: :class:`NoisyBatchNorm1d`, batch norm followed by noise whose mean and
  variance change at every training step (Santurkar et al. 2018, Sec. 2.1): it *creates*
  covariate shift.
* :mod:`.network`: the MLP with no BN, BN or noisy BN, Gaussian-initialized.
* :mod:`.experiment`: :func:`run_experiment` trains it as described by a :class:`ShiftConfig`
  and records test accuracy against steps and the 15th/50th/85th percentiles of the inputs to
  the sigmoids (Ioffe & Szegedy 2015, Fig. 1), with the loss landscape of
  :func:`bnbook.landscape.gradient_landscape` (Santurkar et al. 2018, Fig. 4) on request.
* :mod:`.tuning`: :func:`select_lr`, each network's learning rate chosen by a sweep on a
  validation split of the training set (:func:`split_validation`): a fair plain baseline.
* :mod:`.analysis`: :func:`percentile_drift`, the landscapes of two networks compared
  (:func:`compare_landscapes`, :func:`match_by_loss`) and :func:`mean_std` over seeds.
* :mod:`.panel`: the chapter's slider panel (learning rate, init scale, BN, layer).

References: Ioffe & Szegedy (2015) https://arxiv.org/abs/1502.03167 ;
Santurkar, Tsipras, Ilyas & Madry (2018) https://arxiv.org/abs/1805.11604 .
"""

from bnbook.chapters.internal_covariate_shift.analysis import (
    compare_landscapes,
    loss_variation,
    match_by_loss,
    mean_std,
    percentile_drift,
)
from bnbook.chapters.internal_covariate_shift.experiment import ShiftConfig, ShiftRun, load_data, run_experiment
from bnbook.chapters.internal_covariate_shift.network import NORMS, build_mlp, init_gaussian_, sigmoid_names
from bnbook.chapters.internal_covariate_shift.noisy import DEFAULT_NOISE, NoisyBatchNorm1d
from bnbook.chapters.internal_covariate_shift.panel import PANEL_LRS, PANEL_SCALES, make_panel
from bnbook.chapters.internal_covariate_shift.tuning import LRSweep, select_lr, split_validation
from bnbook.landscape import gradient_landscape

__all__ = [
    "NORMS",
    "DEFAULT_NOISE",
    "NoisyBatchNorm1d",
    "init_gaussian_",
    "build_mlp",
    "sigmoid_names",
    "load_data",
    "ShiftConfig",
    "ShiftRun",
    "run_experiment",
    "gradient_landscape",
    "percentile_drift",
    "loss_variation",
    "compare_landscapes",
    "match_by_loss",
    "mean_std",
    "split_validation",
    "LRSweep",
    "select_lr",
    "PANEL_LRS",
    "PANEL_SCALES",
    "make_panel",
]
