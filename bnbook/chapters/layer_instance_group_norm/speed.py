"""How fast RMSNorm is compared with LayerNorm: forward + backward, from scratch and in torch.

Part of chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm"
(``notebooks/04_layer_instance_group_norm.ipynb``); ``benchmarks/bench_rmsnorm.py`` runs it for
``make bench``.  RMSNorm (Zhang & Sennrich 2019) skips the mean: one reduction instead of two and
no bias, which is why it is cheaper.  Each variant is timed *interleaved* with the others, as
the median of individually timed steps, single-threaded by default.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import Tensor

from bnbook._validate import ShapeError, check_positive_int
from bnbook.state import num_threads

__all__ = ["layer_norm_scratch", "rms_norm_scratch", "variants", "time_norms"]


def layer_norm_scratch(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """LayerNorm over the last axis in plain tensor operations (autograd does the backward)."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def rms_norm_scratch(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """RMSNorm over the last axis in plain tensor operations: no mean, no bias."""
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def variants(d: int) -> dict:
    """``{name: fn(x)}`` with fresh parameters of size ``d``: scratch / torch (/ bnbook) x LN / RMS."""
    d = check_positive_int("d", d)
    w = torch.ones(d, requires_grad=True)
    b = torch.zeros(d, requires_grad=True)
    F = torch.nn.functional
    out = {
        "scratch LN": lambda x: layer_norm_scratch(x, w, b),
        "scratch RMS": lambda x: rms_norm_scratch(x, w),
        "torch LN": lambda x: F.layer_norm(x, (d,), w, b),
        "torch RMS": lambda x: F.rms_norm(x, (d,), w),
    }
    from bnbook import functional as BF

    if hasattr(BF, "rms_norm"):  # the library's from-scratch versions
        out["bnbook LN"] = lambda x: BF.layer_norm(x, (d,), w, b)
        out["bnbook RMS"] = lambda x: BF.rms_norm(x, (d,), w)
    return out


def time_norms(shape=(2048, 512), *, rounds: int = 5, steps: int = 20, threads: int | None = 1, seed: int = 0):
    """Median seconds of forward + backward per variant over ``rounds`` interleaved rounds.

    Returns ``{name: [seconds per round]}``; each round's value is the median of ``steps`` timed steps.
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ShapeError(f"shape must be (tokens, d) or longer, got {shape}")
    rounds, steps = check_positive_int("rounds", rounds), check_positive_int("steps", steps)
    g = torch.Generator().manual_seed(check_positive_int("seed", seed, minimum=0))
    x = torch.randn(shape, generator=g).requires_grad_()
    grad = torch.randn(shape, generator=g)
    fns = variants(shape[-1])
    out = {name: [] for name in fns}
    names = list(fns)
    with num_threads(threads):
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotating order
                fn = fns[name]
                for _ in range(2):  # warm-up
                    fn(x).backward(grad)
                times = []
                for _ in range(steps):
                    t0 = time.perf_counter()
                    fn(x).backward(grad)
                    times.append(time.perf_counter() - t0)
                out[name].append(statistics.median(times))
    return out
