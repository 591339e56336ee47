"""Batch norm under data parallelism: each replica normalizes with its own slice of the batch.

Part of chapter 3, "Batch norm in practice" (``notebooks/03_batch_norm_in_practice.ipynb``),
section 6.  :func:`run_replicas` starts ``len(sizes)`` CPU processes (``torch.multiprocessing``,
start method "spawn", backend gloo on 127.0.0.1); rank ``r`` gets rows ``sizes[:r].sum() ...`` of
the same global batches, runs a BN layer on them in training mode, back-propagates
``loss = sum(output * R)`` for a fixed upstream gradient ``R``, all-reduces (sums) the gradients
of gamma and beta as data parallelism does, and then evaluates.  :func:`reference` does the same
with ONE layer on the concatenated batch; :func:`compare` reports the largest differences.

The worker is a module-level function so that "spawn" can pickle it by name.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from bnbook._validate import check_choice, check_positive_int

__all__ = ["LAYERS", "make_batches", "reference", "run_replicas", "compare", "free_port"]

#: Layers the workers can run: torch.nn's BatchNorm2d (per replica) or bnbook.layers.SyncBatchNorm.
LAYERS = ("BatchNorm2d", "SyncBatchNorm")
_KEYS = ("out", "grad_input", "grad_weight", "grad_bias", "running_mean", "running_var", "eval_out")


def make_batches(sizes: Sequence[int], *, channels: int = 3, hw: int = 4, steps: int = 2, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> dict:  # fmt: skip
    """``steps`` global training batches ``X (N, C, hw, hw)`` with ``N = sum(sizes)``, their upstream
    gradients ``R`` (same shape), and an eval batch; channel ``c`` has mean ``c`` and std ``1 + c``."""
    sizes = [check_positive_int("sizes entry", s) for s in sizes]
    g = torch.Generator().manual_seed(check_positive_int("seed", seed, minimum=0))
    n = sum(sizes)
    c = torch.arange(channels, dtype=dtype).view(1, -1, 1, 1)

    def draw():
        return torch.randn(n, channels, hw, hw, generator=g, dtype=dtype) * (1 + c) + c  # (N, C, hw, hw)

    X = [draw() for _ in range(steps)]
    R = [torch.randn(n, channels, hw, hw, generator=g, dtype=dtype) for _ in range(steps)]
    return dict(sizes=sizes, X=X, R=R, X_eval=draw())


def _run(layer: nn.Module, batches: dict, rows: slice, reduce_grads) -> dict:
    """Training steps on ``rows`` of every batch, then eval: what one replica (or the reference) sees."""
    out = {}
    for i, (X, R) in enumerate(zip(batches["X"], batches["R"])):
        x = X[rows].clone().requires_grad_(True)
        y = layer.train()(x)
        layer.zero_grad()
        (y * R[rows]).sum().backward()
        reduce_grads(layer)
        if i == 0:  # the first step's outputs and gradients
            out.update(out=y.detach(), grad_input=x.grad.detach(), grad_weight=layer.weight.grad.clone(),
                       grad_bias=layer.bias.grad.clone())  # fmt: skip
    out.update(running_mean=layer.running_mean.clone(), running_var=layer.running_var.clone())
    with torch.no_grad():
        out["eval_out"] = layer.eval()(batches["X_eval"][rows])
    return out


def reference(batches: dict, *, momentum: float = 0.1) -> dict:
    """The same steps with one ``nn.BatchNorm2d`` on the concatenated batch (the oracle)."""
    X0 = batches["X"][0]
    bn = nn.BatchNorm2d(X0.shape[1], momentum=momentum).to(X0.dtype)
    with torch.no_grad():  # non-trivial gamma and beta, the same in every process
        bn.weight.copy_(torch.linspace(0.5, 2.0, X0.shape[1], dtype=X0.dtype))
        bn.bias.copy_(torch.linspace(-1.0, 1.0, X0.shape[1], dtype=X0.dtype))
    return _run(bn, batches, slice(None), lambda layer: None)


def _make_layer(kind: str, num_features: int, momentum: float, dtype: torch.dtype) -> nn.Module:
    if kind == "SyncBatchNorm":
        from bnbook.layers import SyncBatchNorm

        layer = SyncBatchNorm(num_features, momentum=momentum)
    else:
        layer = nn.BatchNorm2d(num_features, momentum=momentum)
    layer = layer.to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(0.5, 2.0, num_features, dtype=dtype))
        layer.bias.copy_(torch.linspace(-1.0, 1.0, num_features, dtype=dtype))
    return layer


def _all_reduce_grads(layer: nn.Module) -> None:
    for p in layer.parameters():
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)  # the loss is a sum over the global batch


def _worker(rank: int, world_size: int, port: int, configs: list, kinds: tuple, momentum: float,
            outdir: str) -> None:  # fmt: skip
    """One replica: for every config (a dict from :func:`make_batches`) and layer kind, run and save."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        torch_error = None
        try:  # torch's own SyncBatchNorm, inside a real process group, on CPU tensors
            nn.SyncBatchNorm(3)(torch.randn(4, 3, 2, 2))
        except (ValueError, RuntimeError) as e:
            torch_error = f"{type(e).__name__}: {e}"
        results = []
        for batches in configs:
            sizes = batches["sizes"]
            start = sum(sizes[:rank])
            rows = slice(start, start + sizes[rank])
            per_kind = {}
            for kind in kinds:
                layer = _make_layer(kind, batches["X"][0].shape[1], momentum, batches["X"][0].dtype)
                per_kind[kind] = _run(layer, batches, rows, _all_reduce_grads)
            results.append(per_kind)
        torch.save(dict(results=results, torch_error=torch_error), os.path.join(outdir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_replicas(configs: Sequence[dict], kinds: Sequence[str] = ("BatchNorm2d",), *,
                 momentum: float = 0.1) -> tuple[list[list[dict]], str | None]:  # fmt: skip
    """Run every config (all with the same number of ranks) in ``len(sizes)`` spawned processes.

    Returns ``(results, torch_error)``.  ``results[config][rank][kind]`` is a dict with the first
    step's ``out``, ``grad_input``, ``grad_weight``, ``grad_bias`` (after the all-reduce), the
    final ``running_mean``/``running_var`` and ``eval_out``, for that rank's rows.
    ``torch_error`` is what ``torch.nn.SyncBatchNorm`` raised on CPU tensors in rank 0 (None if
    it ran).
    """
    configs = list(configs)
    if not configs:
        raise ValueError("configs is empty: give at least one dict from make_batches(sizes)")
    world_size = len(configs[0]["sizes"])
    if world_size < 1 or any(len(c["sizes"]) != world_size for c in configs):
        raise ValueError("every config must have the same number of ranks (len(sizes))")
    kinds = tuple(check_choice("layer kind", k, LAYERS) for k in kinds)
    with tempfile.TemporaryDirectory() as outdir:
        mp.spawn(_worker, args=(world_size, free_port(), configs, kinds, momentum, outdir), nprocs=world_size,
                 join=True, start_method="spawn")  # fmt: skip
        per_rank = [torch.load(os.path.join(outdir, f"rank{r}.pt")) for r in range(world_size)]
    results = [[per_rank[r]["results"][i] for r in range(world_size)] for i in range(len(configs))]
    return results, per_rank[0]["torch_error"]


def compare(ranks: list[dict], ref: dict) -> dict[str, float]:
    """Largest absolute difference from the reference of each quantity, over all ranks.

    ``out``, ``grad_input`` and ``eval_out`` are concatenated over the ranks; ``grad_weight``,
    ``grad_bias`` and the running statistics are compared rank by rank (each should equal the
    global one).
    """
    errors = {}
    for key in _KEYS:
        if key in ("out", "grad_input", "eval_out"):
            errors[key] = float((torch.cat([r[key] for r in ranks]) - ref[key]).abs().max())
        else:
            errors[key] = max(float((r[key] - ref[key]).abs().max()) for r in ranks)
    return errors
