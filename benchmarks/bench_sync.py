"""Cost of synchronizing batch statistics: ``bnbook.layers.SyncBatchNorm`` vs ``BatchNorm2d``.

Two gloo processes on this machine's CPU each run forward + backward of a BatchNorm layer on
their own (N, C, H, W) shard, first with bnbook's ``BatchNorm2d`` (no communication), then with
``SyncBatchNorm`` (two all-gathers forward, one all-reduce backward).  A step's time is the
slower rank's; the reported value is the median over the timed steps, the spread the
interquartile range.  On one shared machine the collectives go through loopback TCP, so the
numbers show the latency that synchronization adds, not what NCCL on GPUs would cost.

Each rank is this file run as a script (``--rank``), so that it needs no importable package.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

WORLD = 2


def _rank_main(rank: int, store: str, out: str, shape: list[int], steps: int) -> None:
    import torch
    import torch.distributed as dist

    from bnbook.layers import BatchNorm2d, SyncBatchNorm

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    x = torch.randn(shape, requires_grad=True)
    dy = torch.randn(shape)
    times = {}
    for name, layer in [("BatchNorm2d", BatchNorm2d(shape[1])), ("SyncBatchNorm", SyncBatchNorm(shape[1]))]:
        step_times = []
        for i in range(steps + 3):  # 3 warm-up steps
            dist.barrier()
            start = time.perf_counter()
            layer(x).backward(dy)
            elapsed = torch.tensor([time.perf_counter() - start])
            dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slower rank sets the pace
            if i >= 3:
                step_times.append(elapsed.item())
        times[name] = step_times
    dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps(times))


def _quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return statistics.median(values), q[2] - q[0]


def run(quick: bool) -> list[dict]:
    shape = [8, 8, 8, 8] if quick else [64, 32, 16, 16]
    steps = 10 if quick else 50
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "times.json")
        args = ["--store", os.path.join(tmp, "store"), "--out", out, "--shape", *map(str, shape), "--steps", str(steps)]
        root = str(Path(__file__).resolve().parents[1])  # so that the ranks import this checkout's bnbook
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        procs = [subprocess.Popen([sys.executable, __file__, "--rank", str(r), *args], env=env) for r in range(WORLD)]
        for p in procs:
            if p.wait(timeout=300) != 0:
                raise RuntimeError(f"rank process exited with {p.returncode}")
        times = json.loads(Path(out).read_text())
    rows = []
    medians = {}
    for name, values in times.items():
        median, iqr = _quartiles(values)
        medians[name] = median
        rows.append(
            {
                "name": f"sync_{name}",
                "metric": "forward+backward time per step",
                "value": round(median * 1e3, 3),
                "unit": "ms",
                "spread": round(iqr * 1e3, 3),
                "notes": f"{WORLD} gloo ranks on CPU, shard {shape} each, median of {steps} steps (IQR)",
            }
        )
    rows.append(
        {
            "name": "sync_overhead_ratio",
            "metric": "SyncBatchNorm / BatchNorm2d step time",
            "value": round(medians["SyncBatchNorm"] / medians["BatchNorm2d"], 3),
            "unit": "x",
            "spread": 0.0,
            "notes": "ratio of the medians; the extra time is 3 collectives over loopback TCP",
        }
    )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int)
    parser.add_argument("--store")
    parser.add_argument("--out")
    parser.add_argument("--shape", type=int, nargs=4)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--quick", action="store_true")
    a = parser.parse_args()
    if a.rank is None:  # run the benchmark by hand: print its rows
        for row in run(a.quick):
            print(row)
    else:
        _rank_main(a.rank, a.store, a.out, a.shape, a.steps)
