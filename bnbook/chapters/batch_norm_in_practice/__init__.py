"""Chapter 3, "Batch norm in practice": the concise ``torch.nn`` API, its traps, and what BN buys.

Code of ``notebooks/03_batch_norm_in_practice.ipynb``:

* :mod:`.mlp`: :func:`make_mlp` (BN before, after or without the activation) and :func:`fit_mlp`,
  a fast in-memory training run with private generators (sections 2, 5 and 8).
* :mod:`.freeze`: :class:`FrozenBatchNorm` and :func:`freeze_batch_norm` for fine-tuning (section 3).
* :mod:`.population`: :func:`recompute_bn_stats`, exact population statistics after training
  ("precise BN", Wu & Johnson 2021) (section 4).
* :mod:`.ledger`: :func:`verdict` and the claims ledger of section 5.
* :mod:`.replicas`: BN under data parallelism with spawned gloo processes (section 6).
* :mod:`.figures`: the pooled-axes figure of section 1.
* :mod:`.panel`: the chapter's slider panel (learning rate, init scale, BN) (section 8).

References: Ioffe & Szegedy (2015) https://arxiv.org/abs/1502.03167 ;
Wu & Johnson (2021) https://arxiv.org/abs/2105.07576 .
"""

from bnbook.chapters.batch_norm_in_practice import figures, ledger, replicas
from bnbook.chapters.batch_norm_in_practice.freeze import FrozenBatchNorm, batch_norm_layers, freeze_batch_norm
from bnbook.chapters.batch_norm_in_practice.ledger import combine, ledger_markdown, mean_std, verdict
from bnbook.chapters.batch_norm_in_practice.mlp import (
    POSITIONS,
    MLPRun,
    Tensors,
    accuracy,
    as_tensors,
    fit_mlp,
    init_,
    make_mlp,
    train_net,
)
from bnbook.chapters.batch_norm_in_practice.panel import make_panel
from bnbook.chapters.batch_norm_in_practice.population import ema_vs_recomputed, recompute_bn_stats
from bnbook.chapters.batch_norm_in_practice.replicas import LAYERS, compare, make_batches, reference, run_replicas

__all__ = [
    "make_panel",
    "figures",
    "ledger",
    "replicas",
    "combine",
    "ledger_markdown",
    "mean_std",
    "verdict",
    "FrozenBatchNorm",
    "batch_norm_layers",
    "freeze_batch_norm",
    "POSITIONS",
    "MLPRun",
    "Tensors",
    "accuracy",
    "as_tensors",
    "fit_mlp",
    "make_mlp",
    "init_",
    "train_net",
    "recompute_bn_stats",
    "ema_vs_recomputed",
    "LAYERS",
    "compare",
    "make_batches",
    "reference",
    "run_replicas",
]
