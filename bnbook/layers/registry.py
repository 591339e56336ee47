"""One registry of normalization kinds: ``make_norm(kind, num_features, spatial_dims=...)``.

Models and chapters name a normalization by its kind (``"batch"``, ``"layer"``, ...) and say
what it follows -- a linear layer (``spatial_dims=0``, input (N, C)) or a convolution
(``spatial_dims=1, 2, 3``: (N, C, L), (N, C, H, W), (N, C, D, H, W)) -- and ``make_norm`` picks
the class, from :mod:`bnbook.layers` or, with ``impl="torch"``, its ``torch.nn`` twin:

========  ==================  =============================  ======
kind      spatial_dims = 0    spatial_dims = 1, 2, 3         prefix
========  ==================  =============================  ======
batch     BatchNorm1d(C)      BatchNorm1d/2d/3d(C)           bn
layer     LayerNorm(C)        GroupNorm(1, C)                ln
instance  ValueError          InstanceNorm1d/2d/3d(C)        in
group     GroupNorm(G, C)     GroupNorm(G, C)                gn
rms       RMSNorm(C)          ValueError                     rms
========  ==================  =============================  ======

``layer`` after a convolution is ``GroupNorm(1, C)``: each sample is normalized over all of
(C, *spatial), with a per-*channel* scale and shift, as Wu & He (2018) apply layer norm to
conv nets (``LayerNorm((C, H, W))`` would learn one scale per position and fix the image size).
``instance`` needs a spatial axis: with none, each (sample, channel) is a single value.
``group`` uses ``num_groups`` if given, else :func:`default_num_groups`.  ``rms``
(Zhang & Sennrich 2019) normalizes the *last* axis of (N, ..., C) features, as in
transformers; it has no channel-wise form for (N, C, *spatial) inputs here.

The prefix (:func:`norm_prefix`) names the layers in :mod:`bnbook.models`: ``bn1``, ``ln2``, ...
"""

from __future__ import annotations

import math

from torch import nn

from bnbook._impl import layers_module
from bnbook._validate import check_choice, check_positive_int

__all__ = ["NORM_KINDS", "default_num_groups", "make_norm", "norm_prefix"]

#: Layer-name prefix of each kind, in the order of ``NORM_KINDS``.
_PREFIXES = {"batch": "bn", "layer": "ln", "instance": "in", "group": "gn", "rms": "rms"}
#: The accepted values of ``kind``.
NORM_KINDS = tuple(_PREFIXES)
_SPATIAL_DIMS = (0, 1, 2, 3)


def norm_prefix(kind: str) -> str:
    """The layer-name prefix of ``kind``: ``bn``, ``ln``, ``in``, ``gn`` or ``rms``.

    >>> [norm_prefix(k) for k in NORM_KINDS]
    ['bn', 'ln', 'in', 'gn', 'rms']
    """
    return _PREFIXES[check_choice("kind", kind, NORM_KINDS)]


def default_num_groups(num_channels: int) -> int:
    """Wu & He's G = 32 where C allows it: ``gcd(C, 32)``, but never C itself (unless C = 1).

    ``gcd(C, 32)`` is the largest power of two up to 32 that divides C.  When that is C itself
    (C a power of two up to 32) every group would hold a single channel -- instance norm, and
    after a linear layer a single value without statistics -- so C // 2 is used instead.

    >>> [default_num_groups(c) for c in (1, 2, 6, 16, 64, 84, 100, 120, 256)]
    [1, 1, 2, 8, 32, 4, 4, 8, 32]
    """
    c = check_positive_int("num_channels", num_channels)
    g = math.gcd(c, 32)
    return g if g < c else max(c // 2, 1)


def make_norm(
    kind: str,
    num_features: int,
    *,
    spatial_dims: int = 0,
    impl: str = "bnbook",
    num_groups: int | None = None,
    **kwargs,
) -> nn.Module:
    """A normalization layer of ``kind`` for ``num_features`` channels (see the module's table).

    Parameters
    ----------
    kind : str
        One of ``NORM_KINDS``.
    num_features : int
        Number of channels C (axis 1 of the input; the last axis for (N, C)).
    spatial_dims : {0, 1, 2, 3}
        Number of spatial axes after the channel axis: 0 for (N, C) (after ``nn.Linear``),
        1 for (N, C, L), 2 for (N, C, H, W), 3 for (N, C, D, H, W).
    impl : {"bnbook", "torch"}
        :mod:`bnbook.layers` or ``torch.nn``; both give the same class name and arguments.
    num_groups : int, optional
        Only for ``kind="group"``; must divide ``num_features``.  Default
        :func:`default_num_groups`.
    **kwargs
        Passed on to the constructor of the returned class (``eps``, ``momentum``, ``affine``,
        ``elementwise_affine``, ``bias``, ``device``, ``dtype``, ...): use the argument names
        of that class (``layer`` after a convolution is a ``GroupNorm``: ``affine=``).

    Returns
    -------
    nn.Module
        Maps inputs of shape (N, C, *spatial) to the same shape.

    Raises
    ------
    ValueError
        Unknown ``kind``, ``impl`` or ``spatial_dims``; ``kind="instance"`` with
        ``spatial_dims=0``; ``kind="rms"`` with ``spatial_dims > 0``; ``num_groups`` not
        dividing ``num_features``, or given for another kind.

    Examples
    --------
    >>> make_norm("batch", 16, spatial_dims=2)
    BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> make_norm("layer", 16, spatial_dims=2, impl="torch")
    GroupNorm(1, 16, eps=1e-05, affine=True, bias=True)
    >>> make_norm("group", 6, spatial_dims=1, eps=1e-3)
    GroupNorm(2, 6, eps=0.001, affine=True, bias=True)
    """
    check_choice("kind", kind, NORM_KINDS)
    c = check_positive_int("num_features", num_features)
    spatial_dims = check_choice(
        "spatial_dims", check_positive_int("spatial_dims", spatial_dims, minimum=0), _SPATIAL_DIMS
    )
    lib = layers_module(impl)
    if num_groups is not None and kind != "group":
        raise ValueError(f"num_groups is only used by kind='group', not by kind={kind!r}; got num_groups={num_groups}")

    if kind == "batch":
        cls = (lib.BatchNorm1d, lib.BatchNorm1d, lib.BatchNorm2d, lib.BatchNorm3d)[spatial_dims]
        return cls(c, **kwargs)
    if kind == "instance":
        if spatial_dims == 0:
            raise ValueError(
                "kind='instance' needs a spatial axis (spatial_dims >= 1): on (N, C) inputs each "
                "(sample, channel) is a single value with no statistics; use 'layer' or 'batch' there"
            )
        return getattr(lib, f"InstanceNorm{spatial_dims}d")(c, **kwargs)
    if kind == "group":
        groups = default_num_groups(c) if num_groups is None else check_positive_int("num_groups", num_groups)
        if c % groups != 0:
            divisors = [d for d in range(1, c + 1) if c % d == 0]
            raise ValueError(f"num_groups={groups} does not divide num_features={c}; choose one of {divisors}")
        return lib.GroupNorm(groups, c, **kwargs)
    if kind == "rms":
        if spatial_dims > 0:
            raise ValueError(
                f"kind='rms' normalizes the last axis of (N, ..., C) features and has no channel-wise form for "
                f"(N, C, *spatial) inputs (spatial_dims={spatial_dims}): use it on (N, ..., C) features "
                "(spatial_dims=0, e.g. after nn.Linear), or 'layer' / 'group' after a convolution"
            )
        return lib.RMSNorm(c, **kwargs)
    # kind == "layer": over the features of (N, C), or over (C, *spatial) with per-channel affine
    return lib.LayerNorm(c, **kwargs) if spatial_dims == 0 else lib.GroupNorm(1, c, **kwargs)
