"""Inference time with BatchNorm folded into the layer before it (``bnbook.inference.fold_batch_norm``).

For LeNet (the book's, ``torch.nn`` BatchNorm), ResNet-18 and MobileNetV2 (torchvision, random
weights, randomized BatchNorm statistics and affine parameters) three variants of the same
network are timed in eval mode under ``torch.inference_mode()``: the original, the folded copy,
and the network with its BatchNorm layers deleted (replaced by ``nn.Identity``; a different
function, only a lower bound on the time).  From them:

- speedup = t_original / t_folded;
- share of BatchNorm's inference overhead that folding removes =
  (t_original - t_folded) / (t_original - t_no_bn); target >= 90 %.

Sizes: batch 1 at the networks' native input size (LeNet 1x28x28, ResNet/MobileNet 3x224x224)
and batch 256 at a CIFAR-style 3x32x32 (LeNet 1x28x28), which keeps the whole benchmark near two
minutes on one idle core.  As in ``bench_throughput.py`` the variants are *interleaved*, here pass
by pass: each round warms every variant up, then runs timed passes in which the three variants
follow each other in a rotating order, each forward pass timed on its own; a round's time per
variant is the median of its passes.  Speedup and share are computed per round (from times taken
milliseconds apart) and reported as the median over rounds with the IQR.  PyTorch runs
single-threaded by default (``BNBOOK_BENCH_THREADS=N`` to change it, ``0`` for PyTorch's default),
and a pass is then timed by the process's CPU time (``time.process_time``): on an idle machine the
same as its wall time, on a shared one blind to the time spent waiting for a core (it still feels
other processes through shared caches and memory bandwidth).  With several threads wall time is used.

Denormal floats are flushed to zero while timing (``torch.set_flush_denormal(True)``): with random
weights and no BatchNorm, activations shrink layer by layer into the denormal range, where x86 CPUs
compute many times slower, so the no-BN "limit" measured the slowness of denormals rather than the
cost of the convolutions (ResNet-18 at batch 1: about 22 ms with denormals, 17 ms without, while
the original and the folded network are unaffected).
"""

from __future__ import annotations

import copy
import math
import statistics
import time

import torch
from torch import nn

from bnbook import layers, models, settings
from bnbook.inference import fold_batch_norm

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, layers.BatchNorm1d, layers.BatchNorm2d, layers.BatchNorm3d)
#: (network, batch, channels, image size, warm-up passes, timed passes) per measurement.
CONFIGS = [
    ("lenet", 1, 1, 28, 10, 100),
    ("lenet", 256, 1, 28, 2, 20),
    ("resnet18", 1, 3, 224, 2, 10),
    ("resnet18", 256, 3, 32, 1, 5),
    ("mobilenet_v2", 1, 3, 224, 2, 10),
    ("mobilenet_v2", 256, 3, 32, 1, 5),
]
VARIANTS = ("original", "folded", "no_bn")


def build(name: str, seed: int = 0) -> nn.Module:
    """The network in eval mode, random weights, random BatchNorm statistics and affine parameters."""
    torch.manual_seed(seed)
    if name == "lenet":
        model = models.lenet(norm="batch", impl="torch")
    else:
        import torchvision  # only the benchmark needs it

        model = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BN_TYPES):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.5)
    return model.eval()


def without_bn(model: nn.Module) -> nn.Module:
    """A copy with every BatchNorm replaced by nn.Identity (the time limit folding can reach)."""
    model = copy.deepcopy(model)
    names = [name for name, m in model.named_modules() if isinstance(m, BN_TYPES)]
    for name in names:
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, nn.Identity())
    return model.eval()


def round_times(nets: dict[str, nn.Module], x: torch.Tensor, warmup: int, steps: int, offset: int, clock) -> dict:
    """One round: median seconds per variant over ``steps`` passes, the variants alternating pass by pass.

    Each pass runs every variant once, in a rotating order, each timed on its own with ``clock``:
    the three times of a pass are taken milliseconds apart, so a slow phase of a shared machine
    hits all of them alike.
    """
    times = {v: [] for v in nets}
    with torch.inference_mode():
        for net in nets.values():
            for _ in range(warmup):
                net(x)
        for i in range(steps):
            k = (offset + i) % len(VARIANTS)
            for v in VARIANTS[k:] + VARIANTS[:k]:
                start = clock()
                nets[v](x)
                times[v].append(clock() - start)
    return {v: statistics.median(t) for v, t in times.items()}


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def measure(name: str, batch: int, channels: int, size: int, warmup: int, steps: int, rounds: int, clock) -> dict:
    """Per-round times (s) of the three variants, and the per-round speedup and share."""
    original = build(name)
    folded, report = fold_batch_norm(original, return_report=True)
    if report.skipped or not report.folded:
        raise RuntimeError(f"{name}: expected every BatchNorm to fold, got {report}")
    nets = {"original": original, "folded": folded, "no_bn": without_bn(original)}
    x = torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():  # the benchmark times the right function
        ref, out = original(x), folded(x)
    err = ((out - ref).abs().max() / ref.abs().max()).item()
    if err > 1e-4:
        raise RuntimeError(f"{name}: folded output differs from the original by {err:.2e} (relative)")
    per_round = {v: [] for v in VARIANTS}
    for r in range(rounds):
        for v, t in round_times(nets, x, warmup, steps, r, clock).items():
            per_round[v].append(t)
    t_o, t_f, t_n = (per_round[v] for v in VARIANTS)
    per_round["speedup"] = [o / f for o, f in zip(t_o, t_f)]
    per_round["share"] = [(o - f) / (o - n) if o != n else float("nan") for o, f, n in zip(t_o, t_f, t_n)]
    per_round["max_rel_error"] = err
    per_round["num_bn"] = len(report.folded)
    return per_round


def _threads() -> int:
    return settings.bench_threads() or torch.get_num_threads()


def _share(t_orig: float, t_folded: float, t_no_bn: float) -> float:
    """Percent of BN's overhead (t_orig - t_no_bn) that folding removes (NaN if there is none)."""
    return 100 * (t_orig - t_folded) / (t_orig - t_no_bn) if t_orig != t_no_bn else float("nan")


def _ms(values: list[float]) -> float:
    return 1e3 * statistics.median(values)


def run(quick: bool) -> list[dict]:
    rounds = 2 if quick else 11
    previous = torch.get_num_threads()
    torch.set_num_threads(_threads())
    flushed = torch.set_flush_denormal(True)  # see the module docstring; False where unsupported
    rows = []
    try:
        threads = torch.get_num_threads()
        # One thread: the process's CPU time, which ignores the time it waits for a core on a shared
        # machine; several threads: wall time (CPU time would add up the threads' work).
        clock, clock_name = (time.process_time, "CPU time") if threads == 1 else (time.perf_counter, "wall time")
        for name, batch, channels, size, warmup, steps in CONFIGS:
            if quick:  # a smoke test: small batch and images, few passes
                batch, size, warmup, steps = min(batch, 16), min(size, 64), 1, 2
            m = measure(name, batch, channels, size, warmup, steps, rounds, clock)
            t_o, t_f, t_n = (_ms(m[v]) for v in VARIANTS)
            shares = [s for s in m["share"] if not math.isnan(s)]  # NaN: no measurable BN overhead
            setup = (
                f"{name}, batch {batch}, {channels}x{size}x{size}, {m['num_bn']} BatchNorm folded; "
                f"{rounds} interleaved rounds x ({warmup} warm-up + median of {steps} timed passes), "
                f"{threads} torch thread(s), {clock_name}"
            )
            lo, hi = _quartiles(m["speedup"])
            rows.append(
                {
                    "name": f"fold_{name}_b{batch}_speedup",
                    "metric": "inference speedup t_original / t_folded (median of per-round ratios)",
                    "value": statistics.median(m["speedup"]),
                    "unit": "x",
                    "spread": f"IQR {lo:.3f}-{hi:.3f}",
                    "notes": f"median times: original {t_o:.3g} ms, folded {t_f:.3g} ms, no BN {t_n:.3g} ms; {setup}",
                    "rounds": m["speedup"],
                    "times_ms": {v: [1e3 * t for t in m[v]] for v in VARIANTS},
                    "max_rel_error": m["max_rel_error"],
                }
            )
            lo, hi = _quartiles([100 * s for s in shares]) if shares else (float("nan"),) * 2
            rows.append(
                {
                    "name": f"fold_{name}_b{batch}_bn_overhead_removed",
                    "metric": "share of BN's inference overhead removed, (t_orig - t_folded) / (t_orig - t_noBN)",
                    "value": 100 * statistics.median(shares) if shares else 0.0,
                    "unit": "%",
                    "spread": f"IQR {lo:.0f}-{hi:.0f}",
                    "notes": (
                        f"target >= 90 %; BN overhead (t_orig - t_noBN) = {100 * (t_o - t_n) / t_o:.1f} % of t_orig; "
                        f"from the median times: {_share(t_o, t_f, t_n):.0f} %; "
                        f"folded vs original max relative error {m['max_rel_error']:.1e}"
                    ),
                    "rounds": [None if math.isnan(s) else 100 * s for s in m["share"]],  # None: no measurable overhead
                }
            )
    finally:
        torch.set_num_threads(previous)
        if flushed:
            torch.set_flush_denormal(False)
    return rows
