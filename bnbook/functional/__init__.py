"""Normalization ops written from scratch: batch, layer, instance, group and RMS norm.

Introduced in chapter 2, "Batch normalization from scratch"
(``notebooks/02_batch_norm_from_scratch.ipynb``, ``batch_norm``); its relatives
(``layer_norm``, ``instance_norm``, ``group_norm``, ``rms_norm``) are the ops that chapter
contrasts it with.  Each function has the signature and the semantics of its ``torch.nn.functional`` twin, but is
written with plain tensor operations (``mean``, broadcasting), so every step stays visible and
autograd derives the backward pass -- except for ``batch_norm`` in training mode, which
supplies the chapter's closed-form backward itself, for speed.  ``tests/test_functional.py``
checks everything against PyTorch, including finite-difference gradient checks.

The first four compute, for some choice of axes,

    y = (x - mean) / sqrt(var + eps) * weight + bias

with the *biased* variance (divide by n, not n - 1).  They differ only in what is averaged:

    batch_norm     (N, C, *)   per channel: over the batch and all spatial positions
    layer_norm     (*, D...)   per sample: over the trailing ``normalized_shape`` axes
    instance_norm  (N, C, *)   per sample and channel: over the spatial positions
    group_norm     (N, C, *)   per sample and group of C // G channels

``rms_norm`` (Zhang & Sennrich 2019) drops the centring and the bias:
``y = x / sqrt(mean(x ** 2) + eps) * weight``, per sample over the trailing axes.

One module per op (``batchnorm``, ``layernorm`` with ``rms_norm``, ``instancenorm``,
``groupnorm``; named like ``torch.nn.modules``' files, so that no module shadows the function
it holds), and the shared argument checks in ``_checks``.
"""

from bnbook.functional.batchnorm import batch_norm
from bnbook.functional.groupnorm import group_norm
from bnbook.functional.instancenorm import instance_norm
from bnbook.functional.layernorm import layer_norm, rms_norm

__all__ = ["batch_norm", "group_norm", "instance_norm", "layer_norm", "rms_norm"]
