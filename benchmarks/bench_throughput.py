"""Training throughput of LeNet with our from-scratch BatchNorm vs ``torch.nn.BatchNorm``.

Chapter 2 ("Batch normalization from scratch") quotes d2l: its concise ``nn.BatchNorm`` LeNet trains
at 50,597 examples/sec and its from-scratch one at 32,294 (ratio 0.64, on a GPU). Here the
three variants below are measured side by side in one process, *interleaved*: each round runs
every variant (in a rotating order) for a few warm-up steps and then a fixed number of timed
SGD steps on batches of 256 random 28x28 images. A round's throughput is the batch size over
the *median* time of its individually timed steps, so a step slowed down by another process
does not count. Interleaving spreads slow phases of a shared machine (thermal throttling,
other processes) over all variants instead of biasing one; the per-round ratio bnbook/torch
pairs measurements taken seconds apart.

PyTorch runs single-threaded here by default (env ``BNBOOK_BENCH_THREADS=N`` to change it,
``0`` for PyTorch's default): on a shared or small machine, multi-threaded CPU kernels
competing with other processes make timings swing by 10x, while one thread gives a ratio
that is stable and comparable across machines. The previous thread count is restored.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from bnbook import models, settings

BATCH_SIZE = 256
VARIANTS = {
    "bnbook": dict(norm="batch", impl="bnbook"),  # bnbook.layers.BatchNorm1d/2d
    "torch": dict(norm="batch", impl="torch"),  # torch.nn.BatchNorm1d/2d
    "none": dict(norm=None, impl="torch"),  # plain LeNet, for context
}
D2L_NOTE = "d2l (GPU): from scratch 32,294 vs nn.BatchNorm 50,597 examples/sec, ratio 0.64"


class _Runner:
    """One variant: a LeNet, its SGD optimizer and a few fixed random batches."""

    def __init__(self, norm, impl, batches):
        torch.manual_seed(0)
        self.net = models.lenet(norm, impl=impl)
        self.net.train()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)
        self.loss = nn.CrossEntropyLoss()
        self.batches = batches

    def steps(self, n: int) -> None:
        for i in range(n):
            X, y = self.batches[i % len(self.batches)]
            loss = self.loss(self.net(X), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()

    def examples_per_sec(self, warmup: int, steps: int) -> float:
        """Batch size / median time of ``steps`` individually timed steps (robust to spikes)."""
        self.steps(warmup)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            self.steps(1)
            times.append(time.perf_counter() - start)
        return BATCH_SIZE / statistics.median(times)


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def measure(rounds: int, warmup: int, steps: int) -> dict[str, list[float]]:
    """examples/sec per round for every variant, interleaved, plus the per-round ratio."""
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.rand(BATCH_SIZE, 1, 28, 28, generator=g), torch.randint(0, 10, (BATCH_SIZE,), generator=g))
        for _ in range(4)
    ]
    runners = {name: _Runner(batches=batches, **kw) for name, kw in VARIANTS.items()}
    names = list(runners)
    per_round = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            per_round[name].append(runners[name].examples_per_sec(warmup, steps))
    per_round["ratio"] = [b / t for b, t in zip(per_round["bnbook"], per_round["torch"])]
    return per_round


def _threads() -> int:
    return settings.bench_threads() or torch.get_num_threads()


def run(quick: bool) -> list[dict]:
    rounds, warmup, steps = (3, 1, 4) if quick else (21, 2, 12)
    previous = torch.get_num_threads()
    torch.set_num_threads(_threads())
    try:
        threads = torch.get_num_threads()
        per_round = measure(rounds, warmup, steps)
    finally:
        torch.set_num_threads(previous)
    setup = (
        f"{rounds} interleaved rounds x ({warmup} warm-up + median of {steps} timed SGD steps), batch {BATCH_SIZE}, "
        f"28x28 random data, {threads} torch thread(s)"
    )
    rows = []
    labels = {
        "bnbook": "LeNet + BatchNorm from scratch (impl='bnbook')",
        "torch": "LeNet + nn.BatchNorm (impl='torch')",
        "none": "LeNet without normalization",
    }
    for name in VARIANTS:
        values = per_round[name]
        lo, hi = _quartiles(values)
        rows.append(
            {
                "name": f"lenet_train_{name}",
                "metric": "training throughput (median over rounds)",
                "value": statistics.median(values),
                "unit": "examples/sec",
                "spread": f"IQR {lo:,.0f}-{hi:,.0f}",
                "notes": f"{labels[name]}; {setup}",
                "rounds": values,
            }
        )
    ratios = per_round["ratio"]
    lo, hi = _quartiles(ratios)
    rows.append(
        {
            "name": "lenet_train_ratio_bnbook_torch",
            "metric": "throughput ratio bnbook / torch (median of per-round ratios)",
            "value": statistics.median(ratios),
            "unit": "ratio",
            "spread": f"IQR {lo:.3f}-{hi:.3f}, min-max {min(ratios):.3f}-{max(ratios):.3f}",
            "notes": f"goal >= 0.8 on CPU; {D2L_NOTE}",
            "rounds": ratios,
        }
    )
    return rows
