"""Chapter 2, "Batch normalization from scratch": the batch-norm explorer and its pieces.

Code of ``notebooks/02_batch_norm_from_scratch.ipynb`` (the from-scratch layers themselves are
the library's, :mod:`bnbook.functional` and :mod:`bnbook.layers`):

* :mod:`.activations`: real pre-BN activations (the input of a LeNet's ``bn3``);
* :mod:`.running_stats`: running statistics and batch-vs-population normalization as pure
  functions of tensors, each checked against ``torch.nn.BatchNorm1d``;
* :mod:`.explorer`: the live panel (momentum, eps, batch size, train/eval).
"""

from bnbook.chapters.batch_norm_from_scratch.activations import default_activations, pick_feature, pre_bn_activations
from bnbook.chapters.batch_norm_from_scratch.explorer import (
    BATCH_SIZES,
    EPSILONS,
    IMPLS,
    MODES,
    MOMENTA,
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
    "Explorer",
    "make_panel",
]
