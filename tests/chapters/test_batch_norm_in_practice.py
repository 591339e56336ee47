"""Tests for bnbook.chapters.batch_norm_in_practice (chapter 3), with torch.nn as the oracle."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
import torchvision
from matplotlib.figure import Figure
from torch import nn
from torch.optim.swa_utils import update_bn

from bnbook import layers
from bnbook.chapters import batch_norm_in_practice as ch
from bnbook.chapters.batch_norm_in_practice import panel as ch_panel
from bnbook.widgets import Panel


def _data(n: int = 240, d: int = 20, k: int = 3, seed: int = 0) -> ch.Tensors:
    """A separable toy problem: class c has mean 2c in feature c."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    X = torch.randn(n, d, generator=g)
    X[torch.arange(n), y] += 3.0
    return ch.Tensors(X[: n * 3 // 4], y[: n * 3 // 4], X[n * 3 // 4 :], y[n * 3 // 4 :], "toy")


# --------------------------------------------------------------------------- mlp
@pytest.mark.parametrize("bn", ch.POSITIONS)
def test_make_mlp_layer_order(bn):
    net = ch.make_mlp(10, 3, depth=2, width=8, bn=bn, dropout=0.2, bias=False)
    names = [n for n, _ in net.named_children()]
    block = {
        "none": ["fc1", "act1", "drop1"],
        "before": ["fc1", "bn1", "act1", "drop1"],
        "after": ["fc1", "act1", "bn1", "drop1"],
    }[bn]
    assert names[1:5] == block[:4] if bn != "none" else names[1:4] == block
    assert names[-1] == "fc3" and net(torch.randn(4, 10)).shape == (4, 3)
    assert (net.fc1.bias is None) == (bn == "before")  # bias=False only where a BN follows
    if bn != "none":
        assert isinstance(net.bn1, nn.BatchNorm1d)


def test_make_mlp_impl_and_momentum():
    net = ch.make_mlp(5, 2, bn="before", impl="bnbook", bn_momentum=None)
    assert isinstance(net.bn1, layers.BatchNorm1d) and net.bn1.momentum is None


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(bn="middle"), ValueError),
        (dict(dropout=1.5), ValueError),
        (dict(depth=0), ValueError),
        (dict(activation="tanh"), ValueError),
        (dict(width=2.5), TypeError),
        (dict(impl="jax"), ValueError),
    ],
)
def test_make_mlp_bad_input(kwargs, exc):
    with pytest.raises(exc):
        ch.make_mlp(5, 2, **kwargs)


def test_init_modes():
    net = nn.Sequential(nn.Linear(400, 300), nn.Conv2d(3, 4, 3))
    ch.init_(net, 0.5, torch.Generator().manual_seed(0))
    assert abs(net[0].weight.std().item() - 0.5) < 0.01 and net[0].bias.abs().max() == 0
    ch.init_(net, None, torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(400)  # torch's default: kaiming_uniform(a=sqrt(5)) has the same bound
    assert net[0].weight.abs().max() <= bound and net[0].weight.abs().max() > 0.9 * bound
    assert net[0].bias.abs().max() <= bound and net[0].bias.abs().max() > 0
    ch.init_(net, "xavier", torch.Generator().manual_seed(0))
    assert net[0].weight.abs().max() <= math.sqrt(6 / 700) and net[0].bias.abs().max() == 0
    a = ch.init_(nn.Linear(3, 3), 0.1, torch.Generator().manual_seed(1)).weight
    b = ch.init_(nn.Linear(3, 3), 0.1, torch.Generator().manual_seed(1)).weight
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        ch.init_(net, -1.0, torch.Generator())
    with pytest.raises(TypeError):
        ch.init_(net, "he", torch.Generator())


def test_fit_mlp_is_reproducible_and_leaves_the_global_rng_alone():
    data = _data()
    state = torch.get_rng_state()
    a = ch.fit_mlp(data, bn="before", lr=0.1, steps=30, batch_size=16, seed=3, dropout=0.2)
    assert torch.equal(state, torch.get_rng_state())
    b = ch.fit_mlp(data, bn="before", lr=0.1, steps=30, batch_size=16, seed=3, dropout=0.2)
    c = ch.fit_mlp(data, bn="before", lr=0.1, steps=30, batch_size=16, seed=4, dropout=0.2)
    assert np.array_equal(a.loss, b.loss) and not np.array_equal(a.loss, c.loss)
    assert a.loss.shape == (30,) and not a.diverged and 0 <= a.test_acc <= 1
    assert a.config["bn"] == "before" and a.config["dropout"] == 0.2 and a.config["lr"] == 0.1
    assert isinstance(a.net, nn.Sequential)


def test_fit_mlp_learns_and_records_histograms():
    data = _data()
    run = ch.fit_mlp(data, bn="before", lr=0.2, steps=80, batch_size=32, hist_steps=(0, 80))
    assert run.final_loss(20) < run.loss[:10].mean() and run.test_acc > 0.8
    assert set(run.hist) == {"act1", "act2"} and run.hist["act1"].shape == (2, run.edges.size - 1)
    assert run.hist["act1"][0].sum() == 180 * 100  # the training examples (< 500) times the width
    assert run.hist_steps == (0, 80)


def test_fit_mlp_detects_divergence():
    run = ch.fit_mlp(_data(), bn="none", lr=1e4, steps=50, init_std=3.0, hist_steps=(0, 50))
    assert run.diverged and run.loss.size == run.diverged_at - 1 and run.final_loss() == math.inf
    assert run.hist_steps == (0,)


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(lr=0.0), ValueError),
        (dict(optimizer="rmsprop"), ValueError),
        (dict(steps=0), ValueError),
        (dict(weight_decay=-1.0), ValueError),
        (dict(seed=-1), ValueError),
        (dict(lr=True), TypeError),
    ],
)
def test_train_net_bad_input(kwargs, exc):
    with pytest.raises(exc):
        ch.train_net(ch.make_mlp(20, 3), _data(), **kwargs)


def test_accuracy_counts_nan_as_wrong_and_restores_the_mode():
    net = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [float("nan"), 0.0]])
    assert ch.accuracy(net.train(), X, torch.tensor([0, 1, 0])) == pytest.approx(2 / 3)
    assert net.training


def test_as_tensors_and_head():
    from bnbook.data import load

    loaders = load("digits", 64, limit=50)
    t = ch.as_tensors(loaders)
    assert t.X_train.shape == (50, 64) and t.name == "digits" and t.num_classes == 10
    assert ch.as_tensors(loaders, flatten=False).X_train.shape == (50, 1, 8, 8)
    h = t.head(10)
    assert h.X_train.shape[0] == 10 and h.X_test.shape[0] == t.X_test.shape[0]


# --------------------------------------------------------------------------- freeze
@pytest.mark.parametrize(
    "cls, shape",
    [
        (nn.BatchNorm1d, (6, 3)),
        (nn.BatchNorm2d, (6, 3, 4, 4)),
        (nn.BatchNorm3d, (6, 3, 2, 3, 3)),
        (layers.BatchNorm2d, (6, 3, 4, 4)),
    ],
)
def test_frozen_batch_norm_equals_eval_mode(cls, shape):
    bn = cls(3)
    for _ in range(5):
        bn(torch.randn(shape) * 2 + 1)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
    bn.eval()
    frozen = ch.FrozenBatchNorm.from_batch_norm(bn).train()
    X = torch.randn(shape)
    assert torch.allclose(frozen(X), bn(X), atol=1e-6)
    assert not any(p.requires_grad for p in frozen.parameters())


def test_freeze_batch_norm_survives_train_and_keeps_the_function():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2),
                        nn.BatchNorm1d(2))  # fmt: skip
    for _ in range(5):
        net(torch.randn(8, 1, 6, 6))
    X = torch.randn(8, 1, 6, 6) * 3 + 2
    expected = net.eval()(X)
    assert ch.freeze_batch_norm(net) is net
    assert set(ch.batch_norm_layers(net)) == set()
    assert isinstance(net[1], ch.FrozenBatchNorm) and isinstance(net[5], ch.FrozenBatchNorm)
    net.train()
    before = net[1].running_mean.clone()
    assert torch.allclose(net(X), expected, atol=1e-6)
    assert torch.equal(net[1].running_mean, before)


def test_freeze_batch_norm_train_affine_and_torchvision():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ch.freeze_batch_norm(net, train_affine=True)
    assert [p.requires_grad for p in net[1].parameters()] == [True, True]
    net(torch.randn(5, 3)).sum().backward()
    assert net[1].weight.grad is not None
    tv = torchvision.ops.FrozenBatchNorm2d(4)
    tv.load_state_dict(net[1].state_dict())
    X = torch.randn(2, 4, 3, 3)
    assert torch.allclose(tv(X), net[1](X), atol=1e-6)


def test_freeze_finds_bnbook_and_sync_layers():
    net = nn.Sequential(layers.BatchNorm1d(3), layers.SyncBatchNorm(3), nn.LazyBatchNorm1d())
    assert list(ch.batch_norm_layers(net)) == ["0", "1", "2"]


def test_freeze_bad_input():
    with pytest.raises(ValueError, match="no batch norm layer"):
        ch.freeze_batch_norm(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(TypeError, match="single batch norm layer"):
        ch.freeze_batch_norm(nn.BatchNorm1d(2))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        ch.freeze_batch_norm("resnet")
    with pytest.raises(ValueError, match="track_running_stats=False"):
        ch.freeze_batch_norm(nn.Sequential(nn.BatchNorm1d(2, track_running_stats=False)))
    with pytest.raises(TypeError, match="batch norm layer"):
        ch.FrozenBatchNorm.from_batch_norm(nn.LayerNorm(3))
    with pytest.raises(ValueError, match="C=3"):
        ch.FrozenBatchNorm(3)(torch.randn(2, 4))


# --------------------------------------------------------------------------- population statistics
def test_recompute_bn_stats_gives_the_exact_pooled_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    batches = [torch.randn(n, 3, 4, 4) * 3 + 100 for n in (5, 7, 9)]  # large mean: a raw sum of squares would cancel
    net.eval()
    ch.recompute_bn_stats(net, batches)
    allx = torch.cat(batches).double()
    assert torch.allclose(net[0].running_mean.double(), allx.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(net[0].running_var.double(), allx.var((0, 2, 3)), rtol=1e-5)
    assert not net.training and not net[0].training  # modes restored
    assert net[0].momentum == 0.1
    # the second BN saw the training-mode output of the first, as in training
    with torch.no_grad():
        z = torch.cat([net[1](nn.functional.batch_norm(b, None, None, training=True)) for b in batches]).double()
    assert torch.allclose(net[2].running_mean.double(), z.mean((0, 2, 3)), atol=1e-5)


def test_recompute_bn_stats_agrees_with_update_bn_on_equal_batches():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3), nn.BatchNorm1d(3))
    batches = [(torch.randn(32, 4) * 2 + 1, torch.zeros(32)) for _ in range(8)]
    ours = ch.recompute_bn_stats(copy.deepcopy(net), batches)
    ref = copy.deepcopy(net)
    update_bn(batches, ref)
    for a, b in ((ours[1], ref[1]), (ours[4], ref[4])):
        assert torch.allclose(a.running_mean, b.running_mean, atol=1e-5)  # equal batches: mean of means
        assert torch.allclose(a.running_var, b.running_var, rtol=0.1)  # two unbiased estimators
        assert not torch.allclose(a.running_var, b.running_var, rtol=1e-6)
    two = ch.recompute_bn_stats(copy.deepcopy(net), batches, num_batches=2)
    assert int(two[1].num_batches_tracked) == int(net[1].num_batches_tracked) + 2


def test_ema_vs_recomputed_leaves_the_model_alone():
    run = ch.fit_mlp(_data(), bn="before", lr=0.2, steps=20, batch_size=16, bn_momentum=0.9)
    before = [b.clone() for b in run.net.buffers()]
    data = _data()
    ema, rec = ch.ema_vs_recomputed(run.net, data.X_train.split(30), data.X_test, data.y_test)
    assert 0 <= ema <= 1 and 0 <= rec <= 1
    assert all(torch.equal(a, b) for a, b in zip(before, run.net.buffers()))


def test_recompute_bn_stats_bad_input():
    with pytest.raises(ValueError, match="no batch norm layer"):
        ch.recompute_bn_stats(nn.Linear(2, 2), [torch.randn(3, 2)])
    net = nn.Sequential(nn.BatchNorm1d(2))
    before = net[0].running_mean.clone()
    with pytest.raises(ValueError, match="no batch"):
        ch.recompute_bn_stats(net, [])
    with pytest.raises(ValueError, match="num_batches"):
        ch.recompute_bn_stats(net, [torch.randn(3, 2)], num_batches=0)

    def broken():
        yield torch.randn(4, 2) + 5
        raise RuntimeError("loader failed")

    with pytest.raises(RuntimeError, match="loader failed"):
        ch.recompute_bn_stats(net, broken())
    assert torch.equal(net[0].running_mean, before)  # restored after the failure


# --------------------------------------------------------------------------- ledger
def test_verdicts():
    assert ch.verdict([0.9, 0.91, 0.92], [0.5, 0.51, 0.52]) == "supported"
    assert ch.verdict([0.5, 0.51, 0.52], [0.9, 0.91, 0.92]) == "not supported"
    assert ch.verdict([0.5, 0.6, 0.7], [0.55, 0.65, 0.6]) == "not resolved"
    assert ch.verdict([1.0, 1.1], [2.0, 2.1], higher_is_better=False) == "supported"
    assert ch.verdict([1.0, 1.0], [1.0, 1.0]) == "not resolved"  # zero spread, no difference
    assert ch.combine(["supported", "supported"]) == "supported"
    assert ch.combine(["supported", "not resolved"]) == "depends"
    assert ch.mean_std([1.0, 2.0, 3.0], 2) == "2.00 ± 1.00"
    with pytest.raises(ValueError, match="at least 2"):
        ch.verdict([1.0], [2.0, 3.0])
    with pytest.raises(ValueError, match="NaN"):
        ch.mean_std([1.0, float("nan")])
    with pytest.raises(ValueError):
        ch.combine(["maybe"])
    with pytest.raises(ValueError):
        ch.combine([])
    with pytest.raises(ValueError):
        ch.verdict([1.0, 2.0], [1.0, 2.0], z=0.0)


def test_ledger_markdown():
    row = {"claim": "a|b", "experiment": "e", "with BN": "1", "without BN": "2", "verdict": "supported"}
    text = ch.ledger_markdown([row])
    lines = text.splitlines()
    assert lines[0].startswith("| claim") and lines[1] == "|---|---|---|---|---|"
    assert "a\\|b" in lines[2] and lines[2].endswith("**supported** |")
    with pytest.raises(ValueError, match="lacks"):
        ch.ledger_markdown([{"claim": "x"}])


# --------------------------------------------------------------------------- figure
def test_pooled_dims_match_torch():
    for ndim in (2, 3, 4, 5):
        X = torch.randn(*([4, 3] + [2] * (ndim - 2))) * 2 + 1
        dims = ch.figures.pooled_dims(ndim)
        bn = nn.BatchNorm1d(3, momentum=1.0) if ndim < 4 else (nn.BatchNorm2d if ndim == 4 else nn.BatchNorm3d)(
            3, momentum=1.0)  # fmt: skip
        bn(X)
        assert torch.allclose(bn.running_mean, X.mean(dims), atol=1e-6)
    with pytest.raises(ValueError):
        ch.figures.pooled_dims(1)
    fig = ch.figures.plot_pooled_axes()
    assert isinstance(fig, Figure) and fig.axes[0].get_title()


# --------------------------------------------------------------------------- replicas
def test_make_batches_reference_and_compare():
    b = ch.make_batches((2, 3), channels=2, hw=2, steps=2)
    assert b["sizes"] == [2, 3] and len(b["X"]) == 2 and b["X"][0].shape == (5, 2, 2, 2)
    assert b["X"][0].dtype == torch.float64
    ref = ch.reference(b)
    assert ref["out"].shape == (5, 2, 2, 2) and ref["grad_weight"].shape == (2,)
    fake = [{k: v.clone() for k, v in ref.items()} for _ in range(1)]
    assert max(ch.compare(fake, ref).values()) == 0.0
    fake[0]["running_var"] += 0.5
    assert ch.compare(fake, ref)["running_var"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        ch.make_batches((2, 0))


@pytest.mark.slow
def test_run_replicas_sync_equals_one_batch_norm():
    """Two gloo processes: SyncBatchNorm equals one BatchNorm on the whole batch, a per-rank BN does not."""
    cfg = ch.make_batches((3, 6), seed=2)
    (ranks,), torch_error = ch.run_replicas([cfg], kinds=("BatchNorm2d", "SyncBatchNorm"))
    assert "GPU" in torch_error
    ref = ch.reference(cfg)
    sync = ch.compare([r["SyncBatchNorm"] for r in ranks], ref)
    plain = ch.compare([r["BatchNorm2d"] for r in ranks], ref)
    assert max(sync.values()) < 1e-10
    assert plain["out"] > 1e-2 and plain["running_var"] > 1e-3 and plain["grad_bias"] < 1e-10


def test_free_port_can_be_bound():
    import socket

    port = ch.replicas.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # still free
    assert 1024 <= port <= 65535


def test_run_replicas_bad_input():
    with pytest.raises(ValueError, match="empty"):
        ch.run_replicas([])
    with pytest.raises(ValueError, match="same number of ranks"):
        ch.run_replicas([ch.make_batches((2, 2)), ch.make_batches((2, 2, 2))])
    with pytest.raises(ValueError, match="layer kind"):
        ch.run_replicas([ch.make_batches((2, 2))], kinds=("GroupNorm",))


# --------------------------------------------------------------------------- panel
@pytest.fixture(scope="module")
def panel_and_runs():
    runs = {}
    data = _data(n=400, d=30, k=4)
    panel = ch_panel.make_panel(True, data=data, runs=runs, lrs=(0.01, 10.0), init_scales=(1e-3, 1.0), steps=12)
    return panel, runs, data


def test_panel_every_position_renders(panel_and_runs):
    panel, runs, _ = panel_and_runs
    assert isinstance(panel, Panel) and len(runs) == 8
    for lr, s, bn in itertools.product((0.01, 10.0), (1e-3, 1.0), (False, True)):
        png = panel.render_png(lr=lr, init_scale=s, bn=bn)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    panel.set(lr=10.0, init_scale=1.0, bn=False)
    assert ("Diverged" in panel.status) == runs[10.0, 1.0, False, 0, 12].diverged
    panel.set(lr=0.01, init_scale=1e-3, bn=True)
    assert "with BN" in panel.status and not panel.error


def test_init_scale_run_uses_the_cache(panel_and_runs):
    _, runs, data = panel_and_runs
    run = ch_panel.init_scale_run(data, init_std=1e-3, bn=True, lr=0.01, steps=12, runs=runs)
    assert run is runs[0.01, 1e-3, True, 0, 12]
    assert run.config["depth"] == 5 and run.config["batch_size"] == 100


def test_load_small():
    small = ch_panel.load_small("digits", n_train=50)
    assert small.X_train.shape == (50, 64) and small.name == "digits" and len(small.X_test) == 360
    with pytest.raises(ValueError):
        ch_panel.load_small("digits", n_train=0)


def test_grid_scales_are_saitos():
    assert len(ch_panel.GRID_SCALES) == 16 and ch_panel.GRID_SCALES[0] == 1.0
    assert ch_panel.GRID_SCALES[-1] == pytest.approx(1e-4) and len(ch_panel.PANEL_SCALES) == 4


def test_panel_bad_input():
    with pytest.raises(ValueError):
        ch_panel.make_panel(True, data=_data(), lrs=(), steps=2)
    with pytest.raises(ValueError):
        ch_panel.make_panel(True, data=_data(), lrs=(-1.0,), steps=2)
    with pytest.raises(ValueError):
        ch_panel.make_panel(True, data=_data(), steps=0)
