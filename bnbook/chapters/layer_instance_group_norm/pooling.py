"""What each normalization pools over: reduction axes, pooled sets, and plain normalization.

Part of chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm"
(``notebooks/04_layer_instance_group_norm.ipynb``).  Every layer of the chapter computes
``(x - mean) / sqrt(var + eps)`` (RMSNorm: ``x / sqrt(mean(x^2) + eps)``) over some set of
elements of an ``(N, C, *)`` tensor; this module names those sets:

==========  ===========================================  ===============================
kind        one mean and variance per                    pooled over
==========  ===========================================  ===============================
batch       channel c                                    N and the positions
layer       sample n                                     C and the positions
instance    sample n and channel c                       the positions
group       sample n and group of C // G channels        the group's channels, positions
rms         sample n (no mean subtracted)                C and the positions
==========  ===========================================  ===============================
"""

from __future__ import annotations

import torch
from torch import Tensor

from bnbook._validate import ShapeError, check_choice, check_eps, check_floating, check_positive_int

__all__ = ["KINDS", "LABELS", "reduction_axes", "axes_table", "pooled_sets", "normalize", "set_statistics"]

#: The normalizations of the chapter, in the order of Wu & He (2018), Fig. 2 (plus RMSNorm).
KINDS = ("batch", "layer", "instance", "group", "rms")
#: Short labels for figures and tables.
LABELS = {"batch": "BN", "layer": "LN", "instance": "IN", "group": "GN", "rms": "RMS"}
_LAYOUTS = {2: ("N", "C"), 3: ("N", "C", "L"), 4: ("N", "C", "H", "W")}


def _check_kind(kind: str) -> str:
    return check_choice("kind", kind, KINDS)


def _check_groups(kind: str, num_channels: int, num_groups) -> int:
    """The number of groups the kind implies (G = 1 for layer/rms, C for instance)."""
    if kind == "group":
        if num_groups is None:
            raise ValueError("num_groups is required for kind='group'")
        num_groups = check_positive_int("num_groups", num_groups)
        if num_channels % num_groups:
            raise ValueError(f"num_groups ({num_groups}) must divide the number of channels ({num_channels})")
        return num_groups
    return {"layer": 1, "rms": 1, "instance": num_channels, "batch": 0}[kind]


def reduction_axes(kind: str, ndim: int) -> tuple[int, ...]:
    """Axes of an ``(N, C, *)`` input of ``ndim`` dimensions that one statistic averages over.

    For ``"group"`` the axes refer to the reshaped ``(N, G, C // G, *)`` tensor.

    Examples
    --------
    >>> reduction_axes("batch", 4), reduction_axes("layer", 4), reduction_axes("instance", 3)
    ((0, 2, 3), (1, 2, 3), (2,))
    >>> reduction_axes("group", 4)  # of (N, G, C // G, H, W)
    (2, 3, 4)
    """
    _check_kind(kind)
    ndim = check_positive_int("ndim", ndim, minimum=2)
    spatial = tuple(range(2, ndim))
    if kind == "batch":
        return (0, *spatial)
    if kind in ("layer", "rms"):
        return (1, *spatial)
    if kind == "instance":
        if not spatial:
            raise ValueError(
                "instance norm needs at least one spatial axis (ndim >= 3): on (N, C) each set has 1 value"
            )
        return spatial
    return tuple(range(2, ndim + 1))


def axes_table() -> list[dict[str, str]]:
    """Rows ``{"norm", "(N, C)", "(N, C, L)", "(N, C, H, W)"}``: the axes each statistic pools over."""
    rows = []
    for kind in KINDS:
        row = {"norm": LABELS[kind]}
        for ndim, names in _LAYOUTS.items():
            key = "(" + ", ".join(names) + ")"
            try:
                axes = reduction_axes(kind, ndim)
            except ValueError:
                row[key] = "- (1 value per set)"
                continue
            if kind == "group":
                pooled = ["C/G"] + list(names[2:])
            else:
                pooled = [names[a] for a in axes]
            row[key] = ", ".join(pooled)
        rows.append(row)
    return rows


def _check_input(x: Tensor, min_dim: int = 2) -> None:
    check_floating("x", x)
    if x.dim() < min_dim:
        raise ShapeError(f"x must have shape (N, C, *) with at least {min_dim} dimensions, got {list(x.shape)}")


def pooled_sets(kind: str, shape, num_groups: int | None = None) -> Tensor:
    """Integer id of the statistic every element of an ``(N, C, *)`` tensor is normalized with.

    Elements with the same id share one mean and variance.  ``num_groups`` is used by
    ``kind="group"`` only.

    Returns
    -------
    Tensor
        int64 of shape ``shape``.

    Examples
    --------
    >>> pooled_sets("group", (1, 4, 2), num_groups=2)[0]
    tensor([[0, 0],
            [0, 0],
            [1, 1],
            [1, 1]])
    """
    _check_kind(kind)
    shape = tuple(shape)
    if len(shape) < 2:
        raise ShapeError(f"shape must be (N, C, *) with at least 2 entries, got {shape}")
    for i, s in enumerate(shape):
        check_positive_int(f"shape[{i}]", s)
    n, c = shape[0], shape[1]
    g = _check_groups(kind, c, num_groups)
    ns = torch.arange(n).view(n, 1)
    cs = torch.arange(c).view(1, c)
    if kind == "batch":
        ids = cs.expand(n, c)
    elif kind in ("layer", "rms"):
        ids = ns.expand(n, c)
    else:  # instance (g = C) and group
        ids = ns * g + cs // (c // g)
    return ids.reshape(n, c, *([1] * (len(shape) - 2))).expand(shape).contiguous()


def normalize(kind: str, x: Tensor, num_groups: int | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize ``x`` (N, C, *) as ``kind`` does in training mode, without gamma and beta.

    The same numbers as ``nn.BatchNorm*d(C, affine=False)`` (training mode),
    ``nn.GroupNorm(1, C, affine=False)`` (layer), ``nn.InstanceNorm*d(C)``,
    ``nn.GroupNorm(G, C, affine=False)`` and ``nn.RMSNorm(x.shape[1:], eps, False)``.

    Examples
    --------
    >>> x = torch.randn(4, 6, 5)
    >>> torch.allclose(normalize("group", x, 3), torch.nn.functional.group_norm(x, 3), atol=1e-6)
    True
    """
    _check_kind(kind)
    _check_input(x)
    eps = check_eps(eps)
    n, c = x.shape[:2]
    if kind == "batch":
        dims = reduction_axes(kind, x.dim())
        if x.numel() // c < 2:
            raise ValueError(f"batch norm needs more than 1 value per channel, got x of shape {list(x.shape)}")
        mean = x.mean(dims, keepdim=True)
        var = x.var(dims, keepdim=True, correction=0)
        return (x - mean) / torch.sqrt(var + eps)
    g = _check_groups(kind, c, num_groups)
    if kind == "instance" and x.dim() < 3:
        raise ValueError("instance norm needs at least one spatial axis: x must be (N, C, L) or longer")
    xg = x.reshape(n, g, -1)  # (N, G, C // G * positions)
    if kind == "rms":
        out = xg * torch.rsqrt((xg * xg).mean(-1, keepdim=True) + eps)
    else:
        mean = xg.mean(-1, keepdim=True)
        var = xg.var(-1, keepdim=True, correction=0)
        out = (xg - mean) / torch.sqrt(var + eps)
    return out.reshape(x.shape)


def set_statistics(kind: str, x: Tensor, num_groups: int | None = None) -> tuple[Tensor, Tensor]:
    """Mean and (biased) standard deviation of every pooled set of ``x``, ordered by set id.

    For ``"rms"`` the "mean" is 0 by construction and the second value is the root mean
    square, the only statistic RMSNorm uses.

    Returns
    -------
    mean, std : Tensor
        Shape (number of sets,).
    """
    _check_kind(kind)
    _check_input(x)
    x = x.detach().to(torch.float64)
    n, c = x.shape[:2]
    if kind == "batch":
        flat = x.transpose(0, 1).reshape(c, -1)  # (C, N * positions): set id = channel
    else:
        if kind == "instance" and x.dim() < 3:
            raise ValueError("instance norm needs at least one spatial axis: x must be (N, C, L) or longer")
        g = _check_groups(kind, c, num_groups)
        flat = x.reshape(n * g, -1)  # set id = n * G + group, as in pooled_sets
    if kind == "rms":
        return torch.zeros(flat.shape[0], dtype=torch.float64), flat.square().mean(1).sqrt()
    return flat.mean(1), flat.std(1, correction=0)
