"""Small networks used throughout the book, with or without normalization layers.

Introduced in chapter 2, "Batch normalization from scratch"
(``notebooks/02_batch_norm_from_scratch.ipynb``, LeNet as in d2l's BN chapter); chapter 1
(``notebooks/01_internal_covariate_shift.ipynb``) uses :func:`ioffe_mlp` to reproduce Ioffe &
Szegedy (2015), Fig. 1; :func:`cifar_mlp` is the cs231n-style MLP for CIFAR-10 experiments.

Every model is an ``nn.Sequential`` built from an ``OrderedDict`` so that its layers have
readable names (``conv1``, ``bn1``, ``act1``, ``pool1``, ..., ``fc3``) that forward-hook
probes (:mod:`bnbook.probes`) can refer to::

    >>> net = lenet(norm="batch", impl="torch")
    >>> [name for name, _ in net.named_children()][:4]
    ['conv1', 'bn1', 'act1', 'pool1']

``norm`` is None (no normalization), a kind of :data:`bnbook.layers.NORM_KINDS` built by
:func:`bnbook.layers.make_norm` (``spatial_dims=2`` after a convolution, 0 after a linear
layer), or a callable factory ``norm(num_features, spatial) -> nn.Module``.  Normalization
layers are named by the kind's prefix (:func:`bnbook.layers.norm_prefix`): ``bn1, bn2, ...``
for ``"batch"``, ``ln1, ...`` for ``"layer"``, ``gn``, ``in``, ``rms``; ``norm1, norm2, ...``
for a factory.  They are numbered by position, so ``bn3`` and ``ln3`` sit at the same place.
All other names do not depend on ``norm``.

A kind that has no form for one of a model's layers raises a ValueError that names the layer
(the model is never built with the normalization silently left out): ``"instance"`` needs a
spatial axis, so no model here accepts it after its linear layers; ``"rms"`` normalizes the
last axis of (N, ..., C) features, so :func:`lenet` (convolutions) refuses it.  A factory mixes
kinds, e.g. ``lambda c, spatial: make_norm("instance" if spatial else "layer", c,
spatial_dims=2 if spatial else 0)``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from torch import nn

from ._impl import IMPLS, check_impl
from ._validate import check_positive_int
from .layers.registry import NORM_KINDS, make_norm, norm_prefix

__all__ = ["IMPLS", "NORMS", "cifar_mlp", "ioffe_mlp", "lenet"]

#: Accepted string values of ``norm`` (``None`` and a callable factory are accepted too).
NORMS = NORM_KINDS

NormFactory = Callable[[int, bool], nn.Module]
NormArg = None | str | NormFactory


def _check_norm(norm: NormArg) -> None:
    if norm is None or callable(norm):
        return
    if isinstance(norm, str) and norm in NORMS:
        return
    raise ValueError(
        f"unknown norm {norm!r}; expected None, one of {list(NORMS)}, "
        "or a callable factory norm(num_features: int, spatial: bool) -> nn.Module"
    )


def _norm_layer(norm: NormArg, impl: str, num_features: int, spatial: bool) -> nn.Module | None:
    """Return the normalization layer for ``num_features`` channels (``None`` if ``norm`` is None).

    ``spatial`` is True after a convolution (input ``(N, C, H, W)``) and False after a linear
    layer (input ``(N, C)``).
    """
    if norm is None:
        return None
    if callable(norm):
        layer = norm(num_features, spatial)
        if not isinstance(layer, nn.Module):
            raise TypeError(
                f"norm factory must return an nn.Module, got {type(layer).__name__} "
                f"for norm({num_features}, spatial={spatial})"
            )
        return layer
    return make_norm(norm, num_features, spatial_dims=2 if spatial else 0, impl=impl)


def _size_pair(image_size) -> tuple[int, int]:
    if isinstance(image_size, Sequence) and not isinstance(image_size, str):
        if len(image_size) != 2:
            raise ValueError(f"image_size must be an int or a pair (H, W), got {image_size!r}")
        h, w = image_size
        return check_positive_int("image_size[0]", h), check_positive_int("image_size[1]", w)
    size = check_positive_int("image_size", image_size)
    return size, size


def _check_common(norm: NormArg, impl: str, num_classes: int) -> None:
    _check_norm(norm)
    check_impl(impl)
    check_positive_int("num_classes", num_classes)


class _Builder:
    """Collects named layers; numbers normalization and activation layers automatically."""

    def __init__(self, norm: NormArg, impl: str):
        self.norm, self.impl = norm, impl
        self.layers: OrderedDict[str, nn.Module] = OrderedDict()
        self.prefix = norm_prefix(norm) if isinstance(norm, str) else "norm"
        self.num_norm = 0

    def add(self, name: str, layer: nn.Module) -> None:
        self.layers[name] = layer

    def add_norm(self, num_features: int, spatial: bool) -> None:
        try:
            layer = _norm_layer(self.norm, self.impl, num_features, spatial)
        except ValueError as err:  # e.g. "instance" after a linear layer: say where
            after = next(reversed(self.layers))
            shape = f"(N, {num_features}, H, W)" if spatial else f"(N, {num_features})"
            raise ValueError(f"norm={self.norm!r} cannot follow {after} (its output is {shape}): {err}") from err
        self.num_norm += 1  # numbered even when absent so that names line up with the layers
        if layer is not None:
            self.layers[f"{self.prefix}{self.num_norm}"] = layer

    def build(self) -> nn.Sequential:
        return nn.Sequential(self.layers)


def lenet(
    norm: NormArg = "batch",
    *,
    impl: str = "bnbook",
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int | tuple[int, int] = 28,
) -> nn.Sequential:
    """LeNet-5 in the layout of d2l's batch normalization chapter.

    ``conv1(6, k5) - norm - sigmoid - avgpool(2)``, ``conv2(16, k5) - norm - sigmoid -
    avgpool(2)``, ``flatten``, ``fc1(120) - norm - sigmoid``, ``fc2(84) - norm - sigmoid``,
    ``fc3(num_classes)``. The convolutions have no padding, so a 28x28 input gives
    16 x 4 x 4 = 256 features after ``pool2``, a 32x32 input 16 x 5 x 5 = 400.

    Parameters
    ----------
    norm : None, "batch", "layer", "group" or callable
        ``None``: no normalization (plain LeNet). A kind: ``make_norm(kind, C,
        spatial_dims=2)`` after the convolutions and ``make_norm(kind, C)`` after the hidden
        linear layers, e.g. ``BatchNorm2d`` and ``BatchNorm1d`` for ``"batch"``;
        ``"instance"`` and ``"rms"`` raise ValueError (see the module docstring). A callable
        ``norm(num_features, spatial) -> nn.Module`` builds a custom layer (``spatial`` is
        True after a convolution), e.g. ``lambda c, spatial: nn.GroupNorm(2, c) if spatial
        else nn.LayerNorm(c)``.
    impl : {"bnbook", "torch"}
        Where a ``norm`` kind's classes come from: :mod:`bnbook.layers` (from scratch) or
        ``torch.nn``.
    in_channels, num_classes : int
        Input channels (1 for Fashion-MNIST, 3 for CIFAR-10) and output logits.
    image_size : int or (H, W)
        Input height and width; at least 16 so that both convolutions fit.

    Returns
    -------
    nn.Sequential
        Maps ``(N, in_channels, H, W)`` images to ``(N, num_classes)`` logits.

    Examples
    --------
    >>> import torch
    >>> net = lenet(norm=None, impl="torch")
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    _check_common(norm, impl, num_classes)
    in_channels = check_positive_int("in_channels", in_channels)
    h, w = _size_pair(image_size)
    if min(h, w) < 16:
        raise ValueError(
            f"image_size {(h, w)} is too small for LeNet: two 5x5 convolutions without "
            "padding and two 2x2 poolings need H, W >= 16 (use e.g. data.load(..., resize=28))"
        )
    # conv k5 (no padding) -> pool 2 -> conv k5 -> pool 2
    h2, w2 = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
    b = _Builder(norm, impl)
    b.add("conv1", nn.Conv2d(in_channels, 6, kernel_size=5))
    b.add_norm(6, spatial=True)
    b.add("act1", nn.Sigmoid())
    b.add("pool1", nn.AvgPool2d(kernel_size=2, stride=2))
    b.add("conv2", nn.Conv2d(6, 16, kernel_size=5))
    b.add_norm(16, spatial=True)
    b.add("act2", nn.Sigmoid())
    b.add("pool2", nn.AvgPool2d(kernel_size=2, stride=2))
    b.add("flatten", nn.Flatten())
    b.add("fc1", nn.Linear(16 * h2 * w2, 120))
    b.add_norm(120, spatial=False)
    b.add("act3", nn.Sigmoid())
    b.add("fc2", nn.Linear(120, 84))
    b.add_norm(84, spatial=False)
    b.add("act4", nn.Sigmoid())
    b.add("fc3", nn.Linear(84, num_classes))
    return b.build()


def cifar_mlp(
    norm: NormArg = "batch",
    *,
    impl: str = "bnbook",
    in_features: int = 3072,
    num_classes: int = 10,
) -> nn.Sequential:
    """A two-hidden-layer ReLU MLP for flattened 32x32x3 images (cs231n-style).

    ``flatten``, ``fc1(64) - norm - relu``, ``fc2(32) - norm - relu``, ``fc3(num_classes)``.

    Parameters
    ----------
    norm : None, "batch", "layer", "group", "rms" or callable
        As in :func:`lenet`, after the linear layers only: a kind gives ``make_norm(kind, C)``
        (``"instance"`` raises ValueError); the factory is always called with
        ``spatial=False``.
    impl : {"bnbook", "torch"}
        Where a ``norm`` kind's classes come from: :mod:`bnbook.layers` or ``torch.nn``.
    in_features : int
        Number of input values per example (3 * 32 * 32 = 3072 for CIFAR-10).
    num_classes : int
        Output logits.

    Returns
    -------
    nn.Sequential
        Maps ``(N, ...)`` inputs with ``in_features`` values each to ``(N, num_classes)``.
    """
    _check_common(norm, impl, num_classes)
    in_features = check_positive_int("in_features", in_features)
    b = _Builder(norm, impl)
    b.add("flatten", nn.Flatten())
    b.add("fc1", nn.Linear(in_features, 64))
    b.add_norm(64, spatial=False)
    b.add("act1", nn.ReLU())
    b.add("fc2", nn.Linear(64, 32))
    b.add_norm(32, spatial=False)
    b.add("act2", nn.ReLU())
    b.add("fc3", nn.Linear(32, num_classes))
    return b.build()


def ioffe_mlp(
    norm: NormArg = None,
    *,
    impl: str = "bnbook",
    in_features: int = 784,
    hidden: int = 100,
    depth: int = 3,
    num_classes: int = 10,
) -> nn.Sequential:
    """The MNIST network of Ioffe & Szegedy (2015), Fig. 1: sigmoid MLP, optionally with BN.

    ``flatten``, then ``depth`` times ``fc{i}(hidden) - norm - sigmoid`` (named ``fc1, bn1,
    act1, ...`` for ``norm="batch"``), then ``fc{depth+1}(num_classes)``. The paper uses 3 hidden layers of 100
    units and puts BN before each nonlinearity; its Fig. 1(b, c) track the 15th, 50th and 85th
    percentiles of the input to the last sigmoid (here: ``probes.ActivationProbe(net,
    [f"act{depth}"], where="input")``).

    Parameters
    ----------
    norm : None, "batch", "layer", "group", "rms" or callable
        Default ``None`` (the paper's baseline); ``"batch"`` for the BN network; other kinds
        and factories as in :func:`cifar_mlp`.
    impl : {"bnbook", "torch"}
        Where a ``norm`` kind's classes come from: :mod:`bnbook.layers` or ``torch.nn``.
    in_features, hidden, depth, num_classes : int
        Input size (28 * 28), hidden width, number of hidden layers, output logits.

    Returns
    -------
    nn.Sequential
        Maps ``(N, ...)`` inputs with ``in_features`` values each to ``(N, num_classes)``.
    """
    _check_common(norm, impl, num_classes)
    in_features = check_positive_int("in_features", in_features)
    hidden = check_positive_int("hidden", hidden)
    depth = check_positive_int("depth", depth)
    b = _Builder(norm, impl)
    b.add("flatten", nn.Flatten())
    width = in_features
    for i in range(1, depth + 1):
        b.add(f"fc{i}", nn.Linear(width, hidden))
        b.add_norm(hidden, spatial=False)
        b.add(f"act{i}", nn.Sigmoid())
        width = hidden
    b.add(f"fc{depth + 1}", nn.Linear(width, num_classes))
    return b.build()
