"""Real pre-BN activations for the explorer: the input of a LeNet's ``bn3`` (the output of ``fc1``).

Part of chapter 2, "Batch normalization from scratch" (``notebooks/02_batch_norm_from_scratch.ipynb``).
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import nn

from bnbook import data as datasets
from bnbook import settings
from bnbook._validate import check_positive_int
from bnbook.models import lenet
from bnbook.probes import layer_output

__all__ = ["check_2d", "pre_bn_activations", "default_activations", "pick_feature"]


def check_2d(name: str, x) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor of shape (N, D), N, D >= 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, D), got {type(x).__name__}")
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, D) with N, D >= 1, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def pre_bn_activations(net: nn.Module, X: torch.Tensor, layer: str = "fc1", *, training: bool = False) -> torch.Tensor:
    """Output of the submodule ``layer`` of ``net`` for the images ``X``, as one batch.

    :func:`bnbook.probes.layer_output` (see there for ``training``), required to be the
    (N, D) activations of a fully connected layer, as a ``BatchNorm1d`` takes them.

    Returns
    -------
    Tensor, shape (N, D), float32 on the CPU
    """
    out = layer_output(net, X, layer, training=training)
    if out.dim() != 2:
        raise ValueError(
            f"the output of {layer!r} has shape {tuple(out.shape)}; the explorer needs (N, D) "
            "activations of a fully connected layer (a BatchNorm1d input)"
        )
    return out.float().cpu()


def default_activations(quick: bool = True, *, dataset: str = "auto", seed: int = 0) -> tuple[torch.Tensor, str]:
    """Pre-BN activations of ``fc1`` of a freshly initialized LeNet with BN, on real images.

    Loads up to 1024 (``quick``) or 4096 training images with :func:`bnbook.data.load`
    (``"auto"``: Fashion-MNIST if available, else scikit-learn's digits at 28x28, with a
    printed notice), builds ``bnbook.models.lenet(norm="batch")`` with its own seed (the
    global RNG is left as it was) and runs all images through it as one batch in training
    mode, so the BN layers before ``fc1`` normalize with the statistics of these images.

    Returns
    -------
    activations : Tensor, shape (N, 120)
    description : str
        Where they come from, e.g. ``"fc1 of an untrained LeNet, 1024 digits images"``.
    """
    seed = check_positive_int("seed", seed, minimum=0)
    # Memoized per (quick, dataset, BNBOOK_DATA, seed): rebuilding the panel is then instant.
    acts, description = _default_activations(bool(quick), dataset, settings.dataset(), seed)
    return acts.clone(), description


@functools.lru_cache(maxsize=4)
def _default_activations(quick: bool, dataset: str, _env: Optional[str], seed: int) -> tuple[torch.Tensor, str]:

    limit = 1024 if quick else 4096
    name = (_env or dataset) if dataset == "auto" else dataset
    resize = 28 if name == "digits" else None  # LeNet needs >= 16x16; "auto" resizes by itself
    loaders = datasets.load(dataset, batch_size=limit, limit=limit, seed=seed, resize=resize)
    info = loaders.info
    X = torch.cat([xb for xb, _ in loaders.train_iter])  # (N, C, H, W)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = lenet("batch", impl="torch", in_channels=info.in_channels,
                    num_classes=info.num_classes, image_size=info.image_size)
    acts = pre_bn_activations(net, X, "fc1", training=True)
    return acts, f"fc1 of an untrained LeNet, {X.shape[0]} {info.name} training images"


def pick_feature(x: torch.Tensor) -> int:
    """Index of the feature whose mean is farthest from 0 in units of its std (the most shifted)."""
    x = check_2d("x", x)
    mean, std = x.mean(dim=0), x.std(dim=0)  # (D,)
    score = mean.abs() / std.clamp_min(1e-12)
    return int(score.argmax())


