"""Batch normalization at inference time: fold a BatchNorm into the layer before it.

Introduced in the chapter on batch normalization at inference time ("BN at inference:
folding").  In eval mode a BatchNorm is a fixed per-channel affine map, so when it directly
follows a convolution or a linear layer it can be merged into that layer's weight and bias
and disappear from the network.  ``fold_batch_norm`` does this on a deep copy and reports
every BatchNorm it folded or left alone (and why).

The folding formula.  With running statistics ``mu`` and ``var`` (shape ``(C,)``), ``eps``,
and affine parameters ``gamma``, ``beta`` (1 and 0 if ``affine=False``), the eval-mode
BatchNorm of channel ``c`` of ``z = W * x + b`` (``*``: the convolution or matrix product) is::

    y_c = gamma_c * (z_c - mu_c) / sqrt(var_c + eps) + beta_c
        = s_c * z_c - s_c * mu_c + beta_c                     with s_c = gamma_c / sqrt(var_c + eps)
        = (s_c * W_c) * x + (s_c * (b_c - mu_c) + beta_c)     since z_c = W_c * x + b_c

where ``W_c`` is the slice of ``W`` that produces output channel ``c``.  So::

    scale = gamma / sqrt(running_var + eps)        # (C,)
    W'    = W * scale  over the output-channel axis  # dim 0 of Conv (C, C_in/g, *k) and Linear (C, F_in)
    b'    = (b - running_mean) * scale + beta      # b = 0 if the layer had no bias

A ``ConvTranspose`` weight is ``(C_in, C/g, *k)``: its output channels are dim 1 *within each
of the g groups*, and it is scaled through the view ``(g, C_in/g, C/g, *k)``.

Examples
--------
>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).eval()
>>> folded, report = fold_batch_norm(net, return_report=True)
>>> report.folded
[('0', '1')]
>>> folded[1]
Identity()
>>> x = torch.randn(2, 3, 8, 8)
>>> torch.allclose(folded(x), net(x), atol=1e-6)
True
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Literal, overload

import torch
from torch import fx, nn
from torch.nn.utils import parametrize

from bnbook import layers

__all__ = ["FoldReport", "fold_batch_norm"]

#: BatchNorm classes that can be folded, by the number of spatial dimensions they expect.
BATCH_NORMS: dict[int, tuple[type[nn.Module], ...]] = {
    1: (nn.BatchNorm1d, layers.BatchNorm1d),
    2: (nn.BatchNorm2d, layers.BatchNorm2d),
    3: (nn.BatchNorm3d, layers.BatchNorm3d),
}
#: Layers a BatchNorm can be folded into, with the BatchNorm dimensionality that must follow.
#: Linear needs BatchNorm1d on its (N, C) output; a ConvNd needs BatchNormNd on (N, C, *spatial).
LAYERS: dict[type[nn.Module], int] = {
    nn.Linear: 1,
    nn.Conv1d: 1,
    nn.Conv2d: 2,
    nn.Conv3d: 3,
    nn.ConvTranspose1d: 1,
    nn.ConvTranspose2d: 2,
    nn.ConvTranspose3d: 3,
}
_ALL_BATCH_NORMS = tuple(t for ts in BATCH_NORMS.values() for t in ts)


@dataclass
class FoldReport:
    """What ``fold_batch_norm`` did, by qualified module name (as in ``model.named_modules()``).

    Attributes
    ----------
    folded : list of (layer_name, bn_name)
        Each BatchNorm folded into the Conv/Linear before it (now an ``nn.Identity``).
    skipped : list of (bn_name, reason)
        Each BatchNorm left in place, with the reason in words.
    warnings : list of str
        Remarks about the whole model: no BatchNorm at all, or torch.fx could not trace it.
    traced : bool
        True if the data flow came from ``torch.fx`` tracing; False if the model could not be
        traced and only ``Conv/Linear -> BatchNorm`` neighbours inside ``nn.Sequential``
        containers were folded.
    """

    folded: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    traced: bool = True

    def __str__(self) -> str:
        lines = [f"folded {len(self.folded)} BatchNorm layer(s), skipped {len(self.skipped)}"]
        lines += [f"  folded  {bn} into {layer}" for layer, bn in self.folded]
        lines += [f"  skipped {bn}: {reason}" for bn, reason in self.skipped]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class _Tracer(fx.Tracer):
    """torch.fx's tracer, with our BatchNorm (and any Conv/Linear subclass) kept as one call."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (*_ALL_BATCH_NORMS, *LAYERS)) or super().is_leaf_module(m, module_qualified_name)


def _bn_dims(bn: nn.Module) -> int:
    return next(d for d, types in BATCH_NORMS.items() if isinstance(bn, types))


def _layer_base(m: nn.Module) -> type[nn.Module] | None:
    """The foldable class ``m`` is an instance of, unless a subclass changed what forward does."""
    for base in LAYERS:
        if type(m) is base or (isinstance(m, base) and type(m).forward is base.forward):
            return base
    return None


def _check_statistics(name: str, bn: nn.Module) -> None:
    """A BatchNorm whose statistics or affine parameters are NaN/inf, or whose variance is negative, is corrupt."""
    tensors = {"running_mean": bn.running_mean, "running_var": bn.running_var, "weight": bn.weight, "bias": bn.bias}
    for attr, t in tensors.items():
        if t is not None and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"BatchNorm {name!r} has {int((~torch.isfinite(t)).sum())} non-finite entries in {attr}; "
                "its statistics are corrupt (e.g. a training run that diverged), refusing to fold"
            )
    if bn.running_var is not None and bool((bn.running_var < 0).any()):
        raise ValueError(
            f"BatchNorm {name!r} has {int((bn.running_var < 0).sum())} negative entries in running_var "
            f"(min {bn.running_var.min().item():.3g}); a variance is >= 0, refusing to fold"
        )


def _bn_reason(bn: nn.Module) -> str | None:
    """Why this BatchNorm cannot be folded whatever precedes it (None if it can)."""
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        return "track_running_stats=False: it normalizes with batch statistics even in eval mode"
    if not any(type(bn).forward is t.forward for t in _ALL_BATCH_NORMS):
        return f"{type(bn).__name__} overrides forward, so it may not compute a BatchNorm"
    if _has_hooks(bn):
        return "it has forward hooks, which folding would remove"
    return None


def _has_hooks(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks)


def _pair_reason(layer_name: str, layer: nn.Module, bn: nn.Module, shared: set[str]) -> str | None:
    """Why ``bn`` cannot be folded into the ``layer`` that feeds it (None if it can)."""
    base = _layer_base(layer)
    if base is None:
        return f"its input comes from {layer_name!r} ({type(layer).__name__}), not from a Conv/Linear layer"
    if nn.parameter.is_lazy(layer.weight):
        return f"{layer_name!r} is a lazy module that was never run (its weight is not initialized)"
    if LAYERS[base] != _bn_dims(bn):
        return (
            f"{type(bn).__name__} after {base.__name__} {layer_name!r}: the BatchNorm would normalize an axis "
            "other than the layer's output channels (a ConvNd needs BatchNormNd, a Linear BatchNorm1d)"
        )
    out_channels = layer.out_features if base is nn.Linear else layer.out_channels
    if out_channels != bn.num_features:
        return f"{layer_name!r} has {out_channels} output channels but the BatchNorm has {bn.num_features} features"
    if layer_name in shared:
        return f"{layer_name!r} is used more than once (called twice, registered twice or read as an attribute)"
    if _has_hooks(layer):
        return f"{layer_name!r} has forward hooks, which would see the folded output"
    if parametrize.is_parametrized(layer):
        return f"{layer_name!r} has parametrized weights (e.g. weight or spectral norm)"
    tensors = [bn.running_mean, bn.running_var] + [t for t in (bn.weight, bn.bias) if t is not None]
    if any(t.device != layer.weight.device or t.dtype != layer.weight.dtype for t in tensors):
        return (
            f"{layer_name!r} weight is {layer.weight.dtype} on {layer.weight.device} but the BatchNorm's tensors "
            f"are {sorted({str(t.dtype) for t in tensors})} on {sorted({str(t.device) for t in tensors})}"
        )
    return None


def _describe(node: fx.Node) -> str:
    """Where a BatchNorm's input comes from, in words."""
    if node.op == "call_module":
        return f"module {node.target!r}"
    if node.op in ("call_function", "call_method"):
        name = getattr(node.target, "__name__", str(node.target))
        return f"a {name}() call ({node.name!r})"
    if node.op == "placeholder":
        return f"the model input {node.target!r}"
    return f"{node.op} {node.target!r}"


def _shared_names(model: nn.Module) -> set[str]:
    """Names of modules registered under more than one name (folding one would change the other)."""
    by_id: dict[int, list[str]] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        by_id.setdefault(id(m), []).append(name)
    return {name for names in by_id.values() if len(names) > 1 for name in names}


def _plan_traced(model: nn.Module, graph: fx.Graph, bns: dict[str, nn.Module]) -> tuple[list, dict]:
    """(layer, bn) name pairs to fold, and {bn_name: reason} for the others, from an fx graph."""
    calls: dict[str, int] = {}
    shared = _shared_names(model)
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
        elif node.op == "get_attr":  # e.g. `self.conv.weight` read in forward: that module is used twice
            shared.add(node.target.rpartition(".")[0])
    pairs, reasons = [], {}
    for node in graph.nodes:
        if node.op != "call_module" or node.target not in bns or node.target in reasons:
            continue
        bn_name = node.target
        reason = _bn_reason(bns[bn_name])
        if reason is None and (calls[bn_name] > 1 or bn_name in shared):
            reason = "it is used more than once in forward"
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if reason is None and not isinstance(source, fx.Node):
            reason = "it is called with extra arguments"
        if reason is None and (source.op != "call_module" or source.target in bns):
            reason = f"its input comes from {_describe(source)}, not from a Conv/Linear layer"
        if reason is None and len(source.users) > 1:
            others = sorted(u.name for u in source.users if u is not node)
            reason = f"the output of {source.target!r} also feeds {others}: folding would change their input"
        if reason is None:
            if calls[source.target] > 1:
                shared.add(source.target)
            reason = _pair_reason(source.target, model.get_submodule(source.target), bns[bn_name], shared)
        if reason is None:
            pairs.append((source.target, bn_name))
            reasons[bn_name] = ""  # marks it as handled
        else:
            reasons[bn_name] = reason
    for bn_name in bns:
        reasons.setdefault(bn_name, "it is never called in the traced forward")
    return pairs, {k: v for k, v in reasons.items() if v}


def _plan_sequential(model: nn.Module, bns: dict[str, nn.Module], why: str) -> tuple[list, dict]:
    """Fallback without a graph: Conv/Linear -> BatchNorm neighbours inside plain nn.Sequential containers."""
    shared = _shared_names(model)
    pairs, reasons = [], {}
    for prefix, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential) or type(seq).forward is not nn.Sequential.forward:
            continue
        children = list(seq._modules.items())  # not named_children(): it drops repeated modules
        for (a, layer), (b, bn) in itertools.pairwise(children):
            layer_name, bn_name = (f"{prefix}.{a}", f"{prefix}.{b}") if prefix else (a, b)
            if bn_name not in bns or bn_name in reasons:
                continue
            reason = _bn_reason(bn) or ("it is used more than once" if bn_name in shared else None)
            reason = reason or _pair_reason(layer_name, layer, bn, shared)
            if reason is None:
                pairs.append((layer_name, bn_name))
                reasons[bn_name] = ""
            else:
                reasons[bn_name] = reason
    for bn_name in bns:
        reasons.setdefault(bn_name, f"not directly after a Conv/Linear inside an nn.Sequential ({why})")
    return pairs, {k: v for k, v in reasons.items() if v}


@torch.no_grad()
def _fold(layer: nn.Module, bn: nn.Module) -> None:
    """Fold eval-mode ``bn`` into ``layer``'s weight and bias, in place (formula: module docstring)."""
    w = layer.weight
    dtype = torch.promote_types(w.dtype, torch.float32)  # half precision: compute in float32
    mean, var = bn.running_mean.to(dtype), bn.running_var.to(dtype)  # (C,)
    gamma = bn.weight.to(dtype) if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.to(dtype) if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)  # (C,)
    bias = layer.bias.to(dtype) if layer.bias is not None else torch.zeros_like(mean)
    kernel = [1] * (w.dim() - 2)
    if isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        # weight (C_in, C/g, *k): output channel c = group * C/g + j lives at [group block, j]
        g = layer.groups
        w_new = w.to(dtype).reshape(g, w.shape[0] // g, *w.shape[1:]) * scale.reshape(g, 1, -1, *kernel)
        w_new = w_new.reshape(w.shape)
    else:
        w_new = w.to(dtype) * scale.reshape(-1, 1, *kernel)  # weight (C, ...): output channels on dim 0
    w.copy_(w_new)
    b_new = ((bias - mean) * scale + beta).to(w.dtype)  # (C,)
    if layer.bias is None:
        layer.bias = nn.Parameter(b_new, requires_grad=w.requires_grad)
    else:
        layer.bias.copy_(b_new)


@overload
def fold_batch_norm(model: nn.Module, *, return_report: Literal[False] = False) -> nn.Module: ...
@overload
def fold_batch_norm(model: nn.Module, *, return_report: Literal[True]) -> tuple[nn.Module, FoldReport]: ...


def fold_batch_norm(model: nn.Module, *, return_report: bool = False):
    """An eval-mode copy of ``model`` with every foldable BatchNorm merged into the layer before it.

    A ``BatchNorm1d/2d/3d`` (``torch.nn``'s or ``bnbook.layers``') is folded when its input is
    the output of a ``Linear``, ``Conv1d/2d/3d`` or ``ConvTranspose1d/2d/3d`` module that feeds
    nothing else: the layer's weight and bias absorb the BatchNorm (a bias is created if the
    layer had none; formula and derivation in the module docstring) and the BatchNorm is replaced
    by ``nn.Identity``.  The data flow comes from ``torch.fx`` symbolic tracing, so ResNets and
    MobileNets work; a model that fx cannot trace falls back to folding ``Conv/Linear ->
    BatchNorm`` neighbours inside ``nn.Sequential`` containers (assuming each container is
    called as a whole) and says so in ``FoldReport.warnings``.  The copy computes the same
    function as ``model.eval()``, up to rounding.

    Left unfolded, and listed in ``FoldReport.skipped`` with the reason: a BatchNorm after
    anything other than a Conv/Linear module (an addition, a ReLU, the input); a layer whose
    output also feeds something else; ``track_running_stats=False`` (batch statistics in eval
    mode); a BatchNorm of the wrong dimensionality for its layer (ConvNd needs BatchNormNd,
    Linear BatchNorm1d); tensors on different devices or of different dtypes; modules used more
    than once, with forward hooks or with parametrized weights.

    Parameters
    ----------
    model : nn.Module
        Not modified (parameters, buffers and training flag stay as they are).
    return_report : bool, keyword-only
        Also return a :class:`FoldReport` of what was folded and skipped.

    Returns
    -------
    nn.Module or (nn.Module, FoldReport)
        The folded deep copy, in eval mode, of the same class as ``model``.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Module`` or ``return_report`` is not a bool.
    ValueError
        If a BatchNorm has non-finite statistics or parameters, or a negative running
        variance, or the model cannot be deep-copied.

    Notes
    -----
    Two layouts cannot be told apart without running the model, and are assumed not to occur:
    a ``Linear -> BatchNorm1d`` applied to a 3-D ``(N, L, C)`` tensor with ``L == C`` (BatchNorm1d
    then normalizes L, not the features) and an unbatched ``(C, L)`` ``Conv1d`` output with
    ``L == C``.  In every other misuse the original model raises a shape error.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(return_report, bool):
        raise TypeError(f"return_report must be a bool, got {type(return_report).__name__} ({return_report!r})")
    try:
        folded = copy.deepcopy(model)
    except Exception as exc:  # e.g. a module holding a lock or an open file
        raise ValueError(f"fold_batch_norm works on a deep copy, but the model cannot be copied: {exc}") from exc
    folded.eval()
    report = FoldReport()
    bns = {name: m for name, m in folded.named_modules() if isinstance(m, _ALL_BATCH_NORMS)}
    for name, bn in bns.items():
        _check_statistics(name, bn)
    if not bns:
        report.warnings.append("the model has no BatchNorm layer: returned an unchanged eval-mode copy")
        return (folded, report) if return_report else folded

    try:
        graph = _Tracer().trace(folded)
    except Exception as exc:  # noqa: BLE001 - any tracing failure (data-dependent control flow, ...) means: fall back
        first_line = (str(exc).splitlines() or [""])[0]
        why = f"torch.fx could not trace {type(model).__name__}: {type(exc).__name__}: {first_line}"
        report.traced = False
        report.warnings.append(
            f"{why}; folded only Conv/Linear -> BatchNorm neighbours inside nn.Sequential containers"
        )
        pairs, reasons = _plan_sequential(folded, bns, "the model could not be traced")
    else:
        pairs, reasons = _plan_traced(folded, graph, bns)

    for layer_name, bn_name in pairs:
        _fold(folded.get_submodule(layer_name), bns[bn_name])
        parent, _, attr = bn_name.rpartition(".")
        setattr(folded.get_submodule(parent), attr, nn.Identity().eval())
    report.folded = pairs
    report.skipped = [(name, reasons[name]) for name in bns if name in reasons]
    return (folded, report) if return_report else folded
