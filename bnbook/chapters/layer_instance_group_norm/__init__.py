"""Chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm": what each pools over, when each wins.

Code of ``notebooks/04_layer_instance_group_norm.ipynb``:

* :mod:`.pooling`: reduction axes, pooled sets and plain normalization for every kind
  (BN, LN, IN, GN, RMSNorm) of an (N, C, *) tensor.
* :mod:`.cube`: the (N, C, H x W) cube of Wu & He (2018), Fig. 2.
* :mod:`.channel_norm`: :class:`ChannelLayerNorm`, LayerNorm over the channels at every position
  (ConvNeXt's ``channels_first`` LayerNorm), the fix for ``nn.LayerNorm(C)`` on NCHW tensors.
* :mod:`.cnn` and :mod:`.sweeps`: the small CNN and the batch-size and group-number sweeps
  (Wu & He 2018, Fig. 1 and Table 3, at a small scale).
* :mod:`.sequence`: a tiny transformer block on padded sequences (LN vs RMSNorm vs BN).
* :mod:`.speed`: RMSNorm vs LayerNorm timing (also ``benchmarks/bench_rmsnorm.py``).
* :mod:`.panel`: the chapter's slider panel.

References: Ba, Kiros & Hinton (2016) https://arxiv.org/abs/1607.06450 ; Ulyanov, Vedaldi &
Lempitsky (2016) https://arxiv.org/abs/1607.08022 ; Wu & He (2018) https://arxiv.org/abs/1803.08494 ;
Zhang & Sennrich (2019) https://arxiv.org/abs/1910.07467 .
"""

from bnbook.chapters.layer_instance_group_norm.channel_norm import ChannelLayerNorm, channel_layer_norm
from bnbook.chapters.layer_instance_group_norm.cnn import CNN_NORMS, norm_layer, small_cnn, test_error, train_cnn
from bnbook.chapters.layer_instance_group_norm.cube import cube_cells, cube_colors, draw_cube, update_cube
from bnbook.chapters.layer_instance_group_norm.panel import PANEL_BATCH_SIZES, default_activations, make_panel
from bnbook.chapters.layer_instance_group_norm.pooling import (
    KINDS,
    LABELS,
    axes_table,
    normalize,
    pooled_sets,
    reduction_axes,
    set_statistics,
)
from bnbook.chapters.layer_instance_group_norm.sequence import (
    PAD,
    SEQ_NORMS,
    SeqNorm,
    TinyTransformer,
    make_sequences,
    pad_batch,
    padding_statistics,
    sequence_accuracy,
    train_sequence_model,
)
from bnbook.chapters.layer_instance_group_norm.speed import layer_norm_scratch, rms_norm_scratch, time_norms, variants
from bnbook.chapters.layer_instance_group_norm.sweeps import (
    PAPER_BATCH,
    PAPER_CHANNELS_PER_GROUP,
    PAPER_GROUPS,
    Sweep,
    batch_size_sweep,
    divisors,
    groups_sweep,
    mean_std,
)

__all__ = [
    "KINDS", "LABELS", "reduction_axes", "axes_table", "pooled_sets", "normalize", "set_statistics",
    "cube_cells", "cube_colors", "draw_cube", "update_cube",
    "ChannelLayerNorm", "channel_layer_norm",
    "CNN_NORMS", "norm_layer", "small_cnn", "train_cnn", "test_error",
    "PAPER_BATCH", "PAPER_GROUPS", "PAPER_CHANNELS_PER_GROUP", "Sweep", "batch_size_sweep", "groups_sweep",
    "divisors", "mean_std",
    "SEQ_NORMS", "PAD", "make_sequences", "pad_batch", "SeqNorm", "TinyTransformer", "train_sequence_model",
    "sequence_accuracy", "padding_statistics",
    "layer_norm_scratch", "rms_norm_scratch", "variants", "time_norms",
    "PANEL_BATCH_SIZES", "default_activations", "make_panel",
]  # fmt: skip
