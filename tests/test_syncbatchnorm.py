"""bnbook.layers.SyncBatchNorm against ONE torch.nn.BatchNorm over the concatenated batch.

Two CPU processes (gloo) run once, in a module-scoped fixture, and do every multi-process check
in one go: each rank takes its shard of a batch that both ranks generate from the same seed,
and compares its outputs and gradients with its slice of a reference BatchNorm run on the
whole batch.  The ranks write their results (max abs errors, error messages) to files; the
tests below read them.  Collectives time out after 30 s and the parent gives up after 120 s,
so a bug that desynchronizes the ranks fails the tests instead of hanging them.
"""

from __future__ import annotations

import contextlib
import copy
import doctest
import math
import time
import traceback
from collections import defaultdict
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from bnbook import layers
from bnbook.layers import syncbatchnorm as distributed
from bnbook.layers.syncbatchnorm import SyncBatchNorm, merge_moments

WORLD = 2
TOL = 1e-10  # float64 throughout
F64 = torch.float64
REF = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}  # by input dim

# name -> keyword arguments of _scenario: shard sizes per rank, trailing (spatial) shape, options
SCENARIOS = {
    "2d_sizes_3_7": {"sizes": (3, 7), "tail": ()},
    "2d_sizes_1_1": {"sizes": (1, 1), "tail": ()},  # 1 value per channel per rank, 2 in all: fine
    "3d_sizes_0_5_momentum_None": {"sizes": (0, 5), "tail": (6,), "momentum": None},
    "3d_sizes_5_0": {"sizes": (5, 0), "tail": (2,)},
    "4d_sizes_4_4": {"sizes": (4, 4), "tail": (3, 5)},
    "4d_affine_False": {"sizes": (2, 5), "tail": (3, 3), "affine": False},
    "3d_track_running_stats_False": {"sizes": (3, 7), "tail": (5,), "track": False},
    "5d_momentum_None": {"sizes": (2, 3), "tail": (2, 2, 3), "momentum": None},
    "2d_large_mean": {"sizes": (3, 7), "tail": (), "offset": 1e5},  # a raw sum of squares cancels here
}


# --------------------------------------------------------------------------------------------
# What each rank runs
# --------------------------------------------------------------------------------------------


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference, relative to max |b| where that exceeds 1; NaN is infinitely wrong, empty exact.

    (Relative only for the eval outputs of the large-mean scenario, values ~ 1e4; every other
    compared value is O(1), so there this is the plain max abs error.)
    """
    if a.shape != b.shape:
        return math.inf
    if a.numel() == 0:
        return 0.0
    scale = max(1.0, b.abs().max().item())
    return torch.nan_to_num((a - b).abs(), nan=math.inf).max().item() / scale


def _scenario(rank, *, sizes, tail, momentum=0.1, affine=True, track=True, offset=0.0, steps=3, channels=4):
    """Train-mode steps (with SGD on gamma/beta, grads summed as DDP would), then one eval step."""
    g = torch.Generator().manual_seed(1234)  # same stream on both ranks: same full batches
    options = {"momentum": momentum, "affine": affine, "track_running_stats": track, "dtype": F64}
    ref = REF[2 + len(tail)](channels, **options)
    sync = SyncBatchNorm(channels, **options)
    if affine:
        with torch.no_grad():
            ref.weight.copy_(torch.rand(channels, generator=g, dtype=F64) + 0.5)
            ref.bias.copy_(torch.randn(channels, generator=g, dtype=F64))
    sync.load_state_dict(ref.state_dict())
    start = sum(sizes[:rank])
    shard = slice(start, start + sizes[rank])
    n_all = sum(sizes)
    spread = torch.linspace(0, 5, n_all, dtype=F64).view(n_all, *(1,) * (1 + len(tail)))  # rank means differ
    err = defaultdict(float)

    def record(name, a, b):
        err[name] = max(err[name], _err(a, b))

    for _ in range(steps):
        x = torch.randn(n_all, channels, *tail, generator=g, dtype=F64) * 2 + spread + offset
        dy = torch.randn(x.shape, generator=g, dtype=F64)  # non-trivial upstream gradient
        x_ref, x_sync = x.clone().requires_grad_(), x[shard].clone().requires_grad_()
        out_ref = ref(x_ref)
        (out_ref * dy).sum().backward()
        out = sync(x_sync)
        (out * dy[shard]).sum().backward()
        record("output", out, out_ref.detach()[shard])
        record("grad_input", x_sync.grad, x_ref.grad[shard])
        if affine:
            for name in ("weight", "bias"):
                p_ref, p_sync = getattr(ref, name), getattr(sync, name)
                total = p_sync.grad.clone()
                dist.all_reduce(total)  # what DDP does with every parameter gradient
                record(f"grad_{name}", total, p_ref.grad)
                with torch.no_grad():  # an SGD step on both, so that the steps differ
                    p_ref -= 0.1 * p_ref.grad
                    p_sync -= 0.1 * total
                p_ref.grad = p_sync.grad = None
    if track:
        record("running_mean", sync.running_mean, ref.running_mean)
        record("running_var", sync.running_var, ref.running_var)
        err["num_batches_tracked"] = abs(int(sync.num_batches_tracked) - int(ref.num_batches_tracked))
        both = [torch.empty_like(sync.running_var) for _ in range(WORLD)]
        dist.all_gather(both, sync.running_var)
        err["running_var_rank_spread"] = _err(both[0], both[1])  # identical on every rank

    ref.eval(), sync.eval()
    x = torch.randn(n_all, channels, *tail, generator=g, dtype=F64) + spread + offset
    x_sync = x[shard].clone().requires_grad_()
    out = sync(x_sync)
    out.sum().backward()
    # Eval mode never synchronizes: running statistics, or without them each shard's own batch
    # statistics (as torch.nn.SyncBatchNorm does).
    x_ref = x.clone().requires_grad_() if track else x[shard].clone().requires_grad_()
    out_ref = ref(x_ref)
    out_ref.sum().backward()
    record("eval_output", out, out_ref[shard] if track else out_ref)
    record("eval_grad_input", x_sync.grad, x_ref.grad[shard] if track else x_ref.grad)
    return dict(err)


def _converted_model(rank):
    """A small model converted with convert_sync_batchnorm vs the original on the full batch."""
    torch.manual_seed(7)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5), layers.BatchNorm1d(5),
    ).to(F64)  # fmt: skip
    ref = copy.deepcopy(model)
    sync = SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
    sizes = (3, 5)
    start = sum(sizes[:rank])
    shard = slice(start, start + sizes[rank])
    x = torch.randn(sum(sizes), 2, 4, 4, dtype=F64)
    dy = torch.randn(sum(sizes), 5, dtype=F64)
    x_ref, x_sync = x.clone().requires_grad_(), x[shard].clone().requires_grad_()
    out_ref = ref(x_ref)
    (out_ref * dy).sum().backward()
    out = sync(x_sync)
    (out * dy[shard]).sum().backward()
    err = {"output": _err(out, out_ref.detach()[shard]), "grad_input": _err(x_sync.grad, x_ref.grad[shard])}
    grads = 0.0
    for p_ref, p_sync in zip(ref.parameters(), sync.parameters()):
        total = p_sync.grad.clone()
        dist.all_reduce(total)
        grads = max(grads, _err(total, p_ref.grad))
    err["grad_parameters"] = grads
    err["num_sync_layers"] = sum(isinstance(m, SyncBatchNorm) for m in sync.modules())
    return err


def _expect_error(fn):
    """(exception type name, message) that ``fn`` raises, or None."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - reported to the parent, which checks the type
        return type(e).__name__, str(e), isinstance(e, ValueError)
    return None


def _error_cases(rank):
    x64, x32 = torch.randn(4, 3, dtype=F64), torch.randn(4, 3)
    return {
        # Layers of different widths on the two ranks, each consistent with its input.
        "num_features_differ": _expect_error(lambda: SyncBatchNorm(3 + rank)(torch.randn(4, 3 + rank))),
        # Same layer, but rank 1's input has the wrong number of channels.
        "input_channels": _expect_error(lambda: SyncBatchNorm(3)(x32 if rank == 0 else torch.randn(4, 5))),
        "input_1d_on_rank_0": _expect_error(lambda: SyncBatchNorm(3)(torch.randn(3) if rank == 0 else x32)),
        "dtypes_differ": _expect_error(
            lambda: SyncBatchNorm(3, dtype=x64.dtype if rank else None)(x64 if rank else x32)
        ),
        # One value per channel over both ranks: sizes 1 and 0.
        "one_value_per_channel": _expect_error(lambda: SyncBatchNorm(3)(torch.randn(1 - rank, 3))),
    }


class _NoAllReduce:
    """``torch.distributed`` without its all_reduce: the backward pass keeps local sums."""

    def __getattr__(self, name):
        return getattr(dist, name)

    @staticmethod
    def all_reduce(tensor, *args, **kwargs):
        return None


def _mutations():
    """Deliberately wrong versions of one piece each: name -> {attribute of bnbook.layers.syncbatchnorm: value}."""
    right_moments, right_update = distributed._local_moments, distributed._update_running_
    last = {}

    def average_variances(counts, means, m2s):  # mean of the per-rank biased variances
        n, mean, _ = merge_moments(counts, means, m2s)
        w = counts.to(means.dtype).unsqueeze(1)
        return n, mean, n * (m2s / w).mean(0)

    def no_between_term(counts, means, m2s):  # forgets sum_r n_r (m_r - mean)^2
        n, mean, _ = merge_moments(counts, means, m2s)
        return n, mean, m2s.sum(0)

    def remember_count(x):
        out = right_moments(x)
        last["count"] = out[0]
        return out

    def local_count_update(running_mean, running_var, mean, m2, n, factor):  # M2 / (n_local - 1)
        right_update(running_mean, running_var, mean, m2, torch.tensor(float(last["count"]), dtype=m2.dtype), factor)

    def raw_sum_of_squares(x):  # M2 = sum(x^2) - n mean^2: cancels when |mean| >> std
        count, mean, _ = right_moments(x)
        dims = [0, *range(2, x.dim())]
        return count, mean, (x * x).sum(dims) - count * mean * mean

    return {
        "average_variances": {"merge_moments": average_variances},
        "no_between_term": {"merge_moments": no_between_term},
        "local_count_unbiased": {"_local_moments": remember_count, "_update_running_": local_count_update},
        "raw_sum_of_squares": {"_local_moments": raw_sum_of_squares},
        "local_gradient_sums": {"dist": _NoAllReduce()},
    }


@contextlib.contextmanager
def _patched(values):
    saved = {name: getattr(distributed, name) for name in values}
    try:
        for name, value in values.items():
            setattr(distributed, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(distributed, name, value)


def _torch_sync_batchnorm_on_cpu():
    """What torch.nn.SyncBatchNorm does with a CPU tensor under gloo: its error, or its output."""
    try:
        return "output", nn.SyncBatchNorm(3)(torch.randn(4, 3)).detach()
    except Exception as e:  # noqa: BLE001
        return "error", f"{type(e).__name__}: {e}"


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=30)
    )
    results = {}
    try:
        results["torch_cpu"] = _torch_sync_batchnorm_on_cpu()
        results["errors"] = _error_cases(rank)  # first: the scenarios then show that no rank is left behind
        results["scenarios"] = {name: _scenario(rank, **kw) for name, kw in SCENARIOS.items()}
        results["converted_model"] = _converted_model(rank)
        mutated = {}
        for name, values in _mutations().items():
            with _patched(values):
                mutated[name] = {s: _scenario(rank, **SCENARIOS[s]) for s in ("2d_sizes_3_7", "2d_large_mean")}
        results["mutations"] = mutated
    except BaseException:  # noqa: BLE001 - the parent reports it
        results["crash"] = traceback.format_exc()
    finally:
        torch.save(results, out_dir / f"rank{rank}.pt")
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------
# The parent: one spawn for the whole module
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Results of both ranks: [rank 0's dict, rank 1's dict]."""
    tmp = tmp_path_factory.mktemp("sync")
    start = time.monotonic()
    context = mp.start_processes(
        _worker, args=(str(tmp / "store"), tmp), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = start + 120
    try:
        while not context.join(timeout=max(1.0, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                pytest.fail("the two ranks did not finish within 120 s (a hang?)")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
    results = [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for r, res in enumerate(results):
        assert "crash" not in res, f"rank {r} crashed:\n{res['crash']}"
    print(f"2-process run: {time.monotonic() - start:.1f} s")
    return results


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_matches_one_batchnorm_over_the_concatenated_batch(ranks, name):
    for r, res in enumerate(ranks):
        err = res["scenarios"][name]
        expected = {"output", "grad_input", "eval_output", "eval_grad_input"}
        if SCENARIOS[name].get("affine", True):
            expected |= {"grad_weight", "grad_bias"}
        if SCENARIOS[name].get("track", True):
            expected |= {"running_mean", "running_var", "num_batches_tracked", "running_var_rank_spread"}
        assert expected <= set(err), f"rank {r}: missing {expected - set(err)}"
        bad = {k: v for k, v in err.items() if not v <= TOL}
        assert not bad, f"rank {r}, {name}: errors above {TOL}: {bad}"
        if "running_var_rank_spread" in err:
            assert err["running_var_rank_spread"] == 0.0  # bitwise identical on both ranks


def test_convert_sync_batchnorm_trains_like_the_original_model(ranks):
    for res in ranks:
        err = res["converted_model"]
        assert err.pop("num_sync_layers") == 2  # torch's BatchNorm2d and bnbook's BatchNorm1d
        assert all(v <= TOL for v in err.values()), err


@pytest.mark.parametrize(
    "case, error, words",
    [
        ("num_features_differ", "ShapeError", ["disagree on the number of channels", "rank 0: C=3", "rank 1: C=4"]),
        ("input_channels", "ShapeError", ["rank 1: expected input with C=3 channels", "got 5"]),
        ("input_1d_on_rank_0", "ValueError", ["rank 0: expected at least 2D input (got 1D input)"]),
        ("dtypes_differ", "DTypeError", ["disagree on the input dtype", "torch.float32", "torch.float64"]),
        ("one_value_per_channel", "ValueError", ["Expected more than 1 value per channel when training"]),
    ],
)
def test_bad_input_raises_the_same_clear_error_on_every_rank(ranks, case, error, words):
    for r, res in enumerate(ranks):
        raised = res["errors"][case]
        assert raised is not None, f"rank {r} raised nothing for {case}"
        name, message, _ = raised
        assert name == error, (r, message)
        for w in words:
            assert w in message, (r, message)
    if case == "dtypes_differ":
        return  # a TypeError: the dtypes are the problem, not a value
    assert all(res["errors"][case][2] for res in ranks)  # ValueError (ShapeError is one)


@pytest.mark.parametrize("mutation", list(_mutations()))
def test_a_wrong_merge_is_caught_by_the_same_comparison(ranks, mutation):
    """Each deliberately wrong piece makes some quantity miss TOL (on some rank)."""
    worst = {}
    for res in ranks:
        for errs in res["mutations"][mutation].values():
            for k, v in errs.items():
                worst[k] = max(worst.get(k, 0.0), v)
    assert max(worst.values()) > 1e3 * TOL, worst


def test_torch_sync_batchnorm_refuses_cpu_tensors(ranks):
    """Why this module exists; if torch ever accepts CPU tensors, ours must match it."""
    kind, value = ranks[0]["torch_cpu"]
    if kind == "error":
        assert "SyncBatchNorm expected input tensor to be on GPU" in value, value
    else:  # pragma: no cover - a future torch
        assert value.shape == (4, 3)


# --------------------------------------------------------------------------------------------
# One process, no process group: a plain BatchNorm
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 4), (5, 4, 7), (3, 4, 2, 5), (2, 4, 3, 2, 2)])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine, track", [(True, True), (False, True), (True, False)])
def test_without_process_group_equals_batchnorm(shape, momentum, affine, track):
    assert not dist.is_initialized()
    torch.manual_seed(0)
    options = {"momentum": momentum, "affine": affine, "track_running_stats": track, "dtype": F64}
    ref, sync = REF[len(shape)](shape[1], **options), SyncBatchNorm(shape[1], **options)
    for training in (True, True, False):
        ref.train(training), sync.train(training)
        x = torch.randn(shape, dtype=F64) * 3 + 2
        x_ref, x_sync = x.clone().requires_grad_(), x.clone().requires_grad_()
        dy = torch.randn(shape, dtype=F64)
        out_ref, out = ref(x_ref), sync(x_sync)
        (out_ref * dy).sum().backward(), (out * dy).sum().backward()
        assert _err(out, out_ref) <= TOL
        assert _err(x_sync.grad, x_ref.grad) <= TOL
    for (k, a), (k2, b) in zip(sync.state_dict().items(), ref.state_dict().items()):
        assert k == k2 and _err(a.double(), b.double()) <= TOL, k


def test_bad_input_without_process_group():
    bn = SyncBatchNorm(3)
    with pytest.raises(ValueError, match=r"expected at least 2D input \(got 1D input\)"):
        bn(torch.randn(3))
    with pytest.raises(ValueError, match="expected input with C=3 channels"):
        bn(torch.randn(4, 5))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        bn(torch.randn(1, 3))
    with pytest.raises(TypeError, match="floating-point"):
        bn(torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="process_group"):
        SyncBatchNorm(3, process_group="world")


def test_constructor_repr_and_state_dict_match_torch():
    ours, theirs = SyncBatchNorm(5, eps=1e-3, momentum=None, affine=False), nn.SyncBatchNorm(5, 1e-3, None, False)
    assert repr(ours) == repr(theirs)
    assert list(SyncBatchNorm(5).state_dict()) == list(nn.SyncBatchNorm(5).state_dict())


def test_state_dict_loads_into_batchnorm2d_and_back():
    sync = SyncBatchNorm(3, dtype=F64)
    sync(torch.randn(4, 3, 2, 2, dtype=F64) * 5 + 1)  # non-default running statistics
    with torch.no_grad():
        sync.weight.mul_(2), sync.bias.add_(1)
    bn = nn.BatchNorm2d(3, dtype=F64)
    bn.load_state_dict(sync.state_dict())  # strict: same keys
    back = SyncBatchNorm(3, dtype=F64)
    back.load_state_dict(bn.state_dict())
    x = torch.randn(2, 3, 2, 2, dtype=F64)
    assert _err(back.eval()(x), bn.eval()(x)) <= TOL
    assert int(back.num_batches_tracked) == 1
    assert torch.equal(back.running_var, sync.running_var)


def test_convert_sync_batchnorm_replaces_torch_and_bnbook_layers():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, momentum=None), nn.Sequential(layers.BatchNorm2d(2)))
    model[1](torch.randn(5, 3))  # running statistics to carry over
    model.eval()
    weight, running_mean = model[1].weight, model[1].running_mean
    converted = SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    assert isinstance(model[1], SyncBatchNorm) and isinstance(model[2][0], SyncBatchNorm)
    assert model[1].momentum is None and not model[1].training
    assert model[1].weight is weight and model[1].running_mean is running_mean  # shared, as in torch
    assert int(model[1].num_batches_tracked) == 1
    assert isinstance(model[0], nn.Linear)
    bare = SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm3d(2, affine=False))
    assert isinstance(bare, SyncBatchNorm) and bare.weight is None


@pytest.mark.parametrize("sizes", [(3, 7), (0, 5), (1, 1, 1), (4, 0, 0, 9)])
def test_merge_moments_equals_statistics_of_the_union_and_chans_pairwise_update(sizes):
    torch.manual_seed(1)
    parts = [torch.randn(n, 3, dtype=F64) * (i + 1) + 1e4 * i for i, n in enumerate(sizes)]
    counts = torch.tensor(sizes)
    means = torch.stack([p.mean(0) if len(p) else torch.zeros(3, dtype=F64) for p in parts])
    m2s = torch.stack([((p - p.mean(0)) ** 2).sum(0) if len(p) else torch.zeros(3, dtype=F64) for p in parts])
    n, mean, m2 = merge_moments(counts, means, m2s)
    full = torch.cat(parts)
    var, full_mean = torch.var_mean(full, 0, correction=0)
    assert int(n) == len(full)
    assert _err(mean, full_mean) <= TOL * 1e4 and _err(m2 / n, var) <= TOL * var.max()
    # Chan, Golub & LeVeque's pairwise update, group by group.
    na, ma, m2a = 0, torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64)
    for nb, mb, m2b in zip(sizes, means, m2s):
        if nb:
            delta = mb - ma
            ma, m2a, na = ma + delta * nb / (na + nb), m2a + m2b + delta**2 * na * nb / (na + nb), na + nb
    assert _err(m2, m2a) <= TOL * m2a.max()


def test_module_doctests():
    result = doctest.testmod(distributed)
    assert result.attempted > 0 and result.failed == 0
