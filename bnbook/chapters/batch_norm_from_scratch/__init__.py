"""Chapter 2, "Batch normalization from scratch": the batch-norm explorer and its pieces.

Code of ``notebooks/02_batch_norm_from_scratch.ipynb`` (the from-scratch layers themselves are
the library's, :mod:`bnbook.functional` and :mod:`bnbook.layers`):

* :mod:`.activations`: real pre-BN activations (the input of a LeNet's ``bn3``);
* :mod:`.running_stats`: running statistics and batch-vs-population normalization as pure
  functions of tensors, each checked against ``torch.nn.BatchNorm1d``;
* :mod:`.explorer`: the live panel (momentum, eps, batch size, train/eval);
* :mod:`.diagnostics` and :mod:`.diagnostic_plots`: Karpathy-style training diagnostics
  (activation and gradient histograms, update-to-data ratios) with and without BN.
"""

from bnbook.chapters.batch_norm_from_scratch.activations import default_activations, pick_feature, pre_bn_activations
from bnbook.chapters.batch_norm_from_scratch.diagnostic_plots import (
    early_level,
    layer_spread,
    mean_std,
    plot_distributions,
    plot_update_ratios,
    summarize,
)
from bnbook.chapters.batch_norm_from_scratch.diagnostics import (
    DiagnosticRun,
    Recording,
    mlp,
    record_activations,
    run_diagnostics,
    saturation,
    update_ratios,
)
from bnbook.chapters.batch_norm_from_scratch.explorer import (
    BATCH_SIZES,
    EPSILONS,
    IMPLS,
    MODES,
    MOMENTA,
    NO_TRAIN_OUTPUT,
    Explorer,
    make_panel,
)
from bnbook.chapters.batch_norm_from_scratch.running_stats import (
    batch_size_one_error,
    make_layer,
    normalize_in_batches,
    normalize_with,
    running_average,
    track_running_stats,
)
from bnbook.loaders import batch_indices

__all__ = [
    "MOMENTA",
    "EPSILONS",
    "BATCH_SIZES",
    "MODES",
    "IMPLS",
    "pre_bn_activations",
    "default_activations",
    "pick_feature",
    "batch_indices",
    "make_layer",
    "track_running_stats",
    "running_average",
    "normalize_in_batches",
    "normalize_with",
    "batch_size_one_error",
    "NO_TRAIN_OUTPUT",
    "Explorer",
    "make_panel",
    "mlp",
    "Recording",
    "record_activations",
    "update_ratios",
    "saturation",
    "DiagnosticRun",
    "run_diagnostics",
    "plot_distributions",
    "plot_update_ratios",
    "layer_spread",
    "early_level",
    "mean_std",
    "summarize",
]
