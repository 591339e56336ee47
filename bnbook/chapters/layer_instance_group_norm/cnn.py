"""The chapter's small CNN and its training loop, with every normalization of the chapter.

Part of chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm"
(``notebooks/04_layer_instance_group_norm.ipynb``): the batch-size and group-number experiments
(the ideas of Wu & He 2018, Fig. 1 and Table 3) train this network,

    3 x [conv3x3(C, padded) - norm - relu], with a 2x2 max-pool after the first two blocks
    (14x14, 7x7 and 3x3 positions on 14x14 inputs), then a linear classifier,

at a fixed number of *examples seen*, with SGD (momentum 0.9) and the linear learning-rate
scaling rule that Wu & He use, ``lr = base_lr * batch_size / 32``.  Everything draws from
private generators (initialization inside ``torch.random.fork_rng``, batch order from
:func:`bnbook.loaders.batch_indices`); the global random state is left alone.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from bnbook._validate import ShapeError, check_choice, check_positive_int, check_real
from bnbook.layers import make_norm
from bnbook.loaders import batch_indices
from bnbook.state import num_threads

__all__ = ["CNN_NORMS", "norm_layer", "small_cnn", "train_cnn", "test_error"]

#: Normalizations the CNN accepts ("none": no normalization layer).
CNN_NORMS = ("batch", "layer", "instance", "group", "none")


def norm_layer(kind: str, num_channels: int, *, num_groups: int | None = None, impl: str = "torch") -> nn.Module:
    """The normalization layer after a convolution with ``num_channels`` outputs.

    Built by the library's registry :func:`bnbook.layers.make_norm` (``spatial_dims=2``):
    ``"layer"`` is LN over (C, H, W) with per-channel gamma and beta, ``GroupNorm(1, C)``, as in
    Wu & He (2018); ``"instance"`` is ``InstanceNorm2d(C, affine=True)`` (= ``GroupNorm(C, C)``);
    ``"none"`` is ``nn.Identity()``.
    """
    check_choice("kind", kind, CNN_NORMS)
    c = check_positive_int("num_channels", num_channels)
    if kind == "none":
        return nn.Identity()
    if kind == "group":
        if num_groups is None:
            raise ValueError("num_groups is required for kind='group'")
        return make_norm("group", c, spatial_dims=2, impl=impl, num_groups=num_groups)
    extra = {"affine": True} if kind == "instance" else {}
    return make_norm(kind, c, spatial_dims=2, impl=impl, **extra)


def small_cnn(
    norm: str = "batch",
    *,
    width: int = 16,
    num_groups: int | None = 4,
    image_size: int = 14,
    in_channels: int = 1,
    num_classes: int = 10,
    impl: str = "torch",
    seed: int = 0,
) -> nn.Sequential:
    """Three conv-norm-relu blocks and a linear classifier (layers conv1, norm1, act1, pool1, ..., fc).

    On 14x14 inputs the three blocks run at 14x14, 7x7 and 3x3 positions (every convolution
    is padded), so even in the last block a GN group of one channel (IN) holds 9 values, and a
    batch of N gives batch norm 9 N values per channel.

    Parameters
    ----------
    norm : {"batch", "layer", "instance", "group", "none"}
        ``"instance"`` is ``InstanceNorm2d(C, affine=True)``, i.e. ``GroupNorm(C, C)``.
    width : int
        Channels C of both convolutions (GN's ``num_groups`` must divide it).
    num_groups : int, optional
        Used by ``norm="group"`` only.
    image_size : int
        Height = width of the input (>= 12).
    seed : int
        Initialization seed (PyTorch's default init, drawn inside ``torch.random.fork_rng``).

    Returns
    -------
    nn.Sequential
        Maps (N, in_channels, image_size, image_size) to (N, num_classes) logits.

    Examples
    --------
    >>> net = small_cnn("group", num_groups=4)
    >>> net(torch.zeros(2, 1, 14, 14)).shape
    torch.Size([2, 10])
    """
    check_choice("norm", norm, CNN_NORMS)
    width = check_positive_int("width", width)
    size = check_positive_int("image_size", image_size, minimum=12)
    in_channels = check_positive_int("in_channels", in_channels)
    num_classes = check_positive_int("num_classes", num_classes)
    seed = check_positive_int("seed", seed, minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = OrderedDict()
        c_in = in_channels
        for i in (1, 2, 3):
            # every convolution is padded: 14x14, 7x7 and 3x3 positions on 14x14 inputs
            layers[f"conv{i}"] = nn.Conv2d(c_in, width, 3, padding=1)
            layers[f"norm{i}"] = norm_layer(norm, width, num_groups=num_groups, impl=impl)
            layers[f"act{i}"] = nn.ReLU()
            if i < 3:
                layers[f"pool{i}"] = nn.MaxPool2d(2)
            c_in = width
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(width * (size // 2 // 2) ** 2, num_classes)
        return nn.Sequential(layers)


def _check_data(X: Tensor, y: Tensor, name: str = "X") -> None:
    if not isinstance(X, Tensor) or X.dim() != 4:
        raise ShapeError(f"{name} must be a tensor of shape (N, C, H, W), got {getattr(X, 'shape', type(X))}")
    if not isinstance(y, Tensor) or y.shape != (X.shape[0],):
        raise ShapeError(f"labels must have shape ({X.shape[0]},) to match {name}, got {getattr(y, 'shape', type(y))}")


@torch.no_grad()
def test_error(net: nn.Module, X: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Fraction of misclassified examples of (X, y), in eval mode; the net's mode is restored."""
    _check_data(X, y)
    batch_size = check_positive_int("batch_size", batch_size)
    was = {m: m.training for m in net.modules()}
    net.eval()
    try:
        wrong = sum(
            int((net(X[i : i + batch_size]).argmax(1) != y[i : i + batch_size]).sum())
            for i in range(0, len(X), batch_size)
        )
    finally:
        for m, t in was.items():
            m.training = t
    return wrong / len(X)


def train_cnn(
    net: nn.Module,
    X: Tensor,
    y: Tensor,
    *,
    batch_size: int,
    examples: int,
    base_lr: float = 0.05,
    seed: int = 0,
    threads: int | None = 1,
) -> list[float]:
    """Train ``net`` with SGD (momentum 0.9) on ``examples`` examples drawn in shuffled epochs.

    Steps: ``ceil(examples / batch_size)``; learning rate ``base_lr * batch_size / 32`` (Wu & He's
    linear scaling).  Returns the training loss of every step; raises FloatingPointError if the
    loss becomes NaN or infinite.
    """
    _check_data(X, y)
    batch_size = check_positive_int("batch_size", batch_size)
    examples = check_positive_int("examples", examples)
    base_lr = check_real("base_lr", base_lr, low=0.0, low_open=True)
    steps = math.ceil(examples / batch_size)
    order = batch_indices(len(X), batch_size, steps, seed=seed)  # (steps, batch_size)
    opt = torch.optim.SGD(net.parameters(), lr=base_lr * batch_size / 32, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    net.train()
    with num_threads(threads):
        for idx in order:
            loss = loss_fn(net(X[idx]), y[idx])
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss {loss.item()} at step {len(losses) + 1}: lower base_lr ({base_lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses
