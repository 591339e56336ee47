"""Normalization layers built on ``bnbook.functional``: drop-in twins of ``torch.nn``'s.

Introduced in chapter 2, "Batch normalization from scratch"
(``notebooks/02_batch_norm_from_scratch.ipynb``, ``BatchNorm1d/2d/3d``); its relatives
``LayerNorm``, ``InstanceNorm1d/2d/3d``, ``GroupNorm`` and ``RMSNorm`` are the layers it is
contrasted with.
Constructor arguments and defaults, parameter and buffer names, shapes and dtypes,
``state_dict`` keys, ``repr``, train/eval behaviour and the running statistics are those of
``torch.nn``, so a model can swap one for the other and load the other's checkpoints.
``tests/test_layers.py`` holds one contract test run against every pair.

Learnable parameters (``weight`` = gamma, ``bias`` = beta) are ``nn.Parameter``s; running
statistics are *buffers*: saved in the ``state_dict`` and moved by ``.to()``, never trained.

``make_norm(kind, num_features, spatial_dims=...)`` (:mod:`bnbook.layers.registry`) builds
any of them -- or its ``torch.nn`` twin -- by name; ``NORM_KINDS`` lists the names.

Modules: ``_base`` (``_NormBase``, shared helpers), ``batchnorm``, ``instancenorm``,
``layernorm`` (``LayerNorm``, ``GroupNorm``, ``RMSNorm``), ``syncbatchnorm`` (``SyncBatchNorm``,
from scratch on ``torch.distributed``; chapter 3), ``registry``.  The base classes ``_NormBase``,
``_BatchNorm`` and ``_InstanceNorm`` stay importable from here for subclasses.
"""

# The base classes are not public API but other modules subclass them: keep them importable here.
from bnbook.layers._base import _NormBase  # noqa: F401
from bnbook.layers.batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d, _BatchNorm  # noqa: F401
from bnbook.layers.instancenorm import InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, _InstanceNorm  # noqa: F401
from bnbook.layers.layernorm import GroupNorm, LayerNorm, RMSNorm
from bnbook.layers.registry import NORM_KINDS, make_norm, norm_prefix
from bnbook.layers.syncbatchnorm import SyncBatchNorm

__all__ = [
    "NORM_KINDS",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "RMSNorm",
    "SyncBatchNorm",
    "make_norm",
    "norm_prefix",
]
