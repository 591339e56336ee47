"""Tests for bnbook.bn_explorer: the chapter-2 panel and its helpers, with torch.nn.BatchNorm1d as the oracle."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from bnbook.chapters import batch_norm_from_scratch as be
from bnbook.widgets import Panel

PYTORCH_B1 = "Expected more than 1 value per channel when training"
IMPLS = ["torch", "bnbook"]


def _acts(n: int = 300, d: int = 5, seed: int = 0) -> torch.Tensor:
    """(n, d) activations with a different shift and scale per feature (feature 2 most shifted)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    shift = torch.tensor([0.5, -1.0, 8.0, 0.0, 2.0])[:d]
    scale = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0])[:d]
    return x * scale + shift


@pytest.fixture(scope="module")
def explorer() -> be.Explorer:
    return be.Explorer(_acts(600), steps=40, num_eval=512, impl="torch")


@pytest.fixture(scope="module")
def panel() -> Panel:
    return be.make_panel(activations=_acts(600), steps=40, impl="bnbook")


# --------------------------------------------------------------------------- helpers vs torch.nn
def test_batch_indices_epochs_without_repeats():
    idx = be.batch_indices(10, 3, steps=7, seed=1)  # 3 batches per epoch, 1 example dropped per epoch
    assert idx.shape == (7, 3) and idx.dtype == torch.int64
    for epoch in range(2):
        rows = idx[3 * epoch : 3 * epoch + 3].flatten()
        assert len(set(rows.tolist())) == 9  # a permutation minus the dropped tail
    assert torch.equal(idx, be.batch_indices(10, 3, steps=7, seed=1))
    assert not torch.equal(idx, be.batch_indices(10, 3, steps=7, seed=2))
    state = torch.get_rng_state()
    be.batch_indices(10, 3, steps=7)
    assert torch.equal(state, torch.get_rng_state())  # private generator
    with pytest.raises(ValueError, match="batch_size must be <= n"):
        be.batch_indices(4, 5, steps=1)
    with pytest.raises(ValueError, match="steps"):
        be.batch_indices(4, 2, steps=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("momentum", [0.0, 0.1, 0.9, 1.0, None])
def test_running_stats_match_torch(impl, momentum):
    x = _acts(200)
    idx = be.batch_indices(200, 16, steps=25, seed=3)
    ref = nn.BatchNorm1d(5, momentum=momentum)
    ref_means, ref_vars = [ref.running_mean.clone()], [ref.running_var.clone()]
    for rows in idx:
        ref(x[rows])
        ref_means.append(ref.running_mean.clone())
        ref_vars.append(ref.running_var.clone())
    ref_means, ref_vars = torch.stack(ref_means).detach(), torch.stack(ref_vars).detach()

    means, variances = be.track_running_stats(be.make_layer(5, momentum=momentum, impl=impl), x, idx)
    torch.testing.assert_close(means, ref_means, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(variances, ref_vars, rtol=1e-5, atol=1e-6)

    # The running-average rule on the (unbiased) batch statistics gives the same buffers.
    var_b, mean_b = torch.var_mean(x[idx], dim=1, correction=1)  # (S, D)
    torch.testing.assert_close(be.running_average(mean_b, momentum, 0.0), ref_means, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(be.running_average(var_b, momentum, 1.0), ref_vars, rtol=1e-5, atol=1e-5)
    if momentum == 0.0:
        assert torch.all(means == 0) and torch.all(variances == 1)
    if momentum == 1.0:  # the last batch only, with the UNBIASED variance
        torch.testing.assert_close(variances[-1], x[idx[-1]].var(dim=0, unbiased=True))


@pytest.mark.parametrize("batch_size, eps", [(2, 1e-5), (3, 1e-10), (8, 1.0), (25, 1e-3)])
def test_normalize_in_batches_matches_train_mode(batch_size, eps):
    x = _acts(101)
    y = be.normalize_in_batches(x, batch_size, eps)
    k = 101 // batch_size
    assert y.shape == (k * batch_size, 5)  # the incomplete last batch is dropped
    bn = nn.BatchNorm1d(5, eps=eps, affine=False, track_running_stats=False).train()
    ref = torch.cat([bn(x[j * batch_size : (j + 1) * batch_size]) for j in range(k)])
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("eps", [1e-10, 1e-5, 1.0])
def test_normalize_with_matches_eval_mode(impl, eps):
    x = _acts(50)
    bn = nn.BatchNorm1d(5, eps=eps, affine=False).eval()
    bn.running_mean.copy_(torch.tensor([0.1, -0.2, 7.5, 0.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1.5, 4.0, 0.2, 9.0, 0.01]))
    y = be.normalize_with(x, bn.running_mean, bn.running_var, eps, impl=impl)
    torch.testing.assert_close(y, bn(x), rtol=1e-5, atol=1e-5)
    # scalars broadcast over the features
    torch.testing.assert_close(be.normalize_with(x, 0.0, 1.0, eps, impl=impl), x / np.sqrt(1 + eps))


@pytest.mark.parametrize("impl", IMPLS)
def test_batch_size_one_is_pytorchs_error(impl):
    msg = be.batch_size_one_error(7, impl=impl)
    assert PYTORCH_B1 in msg and "[1, 7]" in msg
    with pytest.raises(ValueError, match=PYTORCH_B1):
        be.normalize_in_batches(_acts(10), 1)
    with pytest.raises(ValueError, match=PYTORCH_B1):
        be.track_running_stats(be.make_layer(5, impl=impl), _acts(10), be.batch_indices(10, 1, 3))


def test_helper_argument_errors():
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        be.normalize_with(np.zeros((3, 2)), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        be.normalize_in_batches(torch.zeros(4, 2, 2), 2)
    with pytest.raises(TypeError, match="floating-point"):
        be.pick_feature(torch.zeros(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="batch_size must be <= 4"):
        be.normalize_in_batches(torch.zeros(4, 2), 5)
    with pytest.raises(ValueError, match="eps"):
        be.normalize_in_batches(torch.zeros(4, 2), 2, eps=0.0)
    with pytest.raises(ValueError, match="momentum"):
        be.running_average(torch.zeros(3, 2), 1.5, 0.0)
    with pytest.raises(ValueError, match="impl"):
        be.make_layer(3, impl="keras")
    with pytest.raises(ValueError, match="idx"):
        be.track_running_stats(be.make_layer(2, impl="torch"), torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))


def test_pick_feature_is_most_shifted():
    assert be.pick_feature(_acts(400)) == 2  # mean 8, std 0.5


# --------------------------------------------------------------------------- activations of a real network
def _tiny_lenet(norm="batch"):
    from bnbook.models import lenet

    torch.manual_seed(0)
    return lenet(norm, impl="torch", image_size=16)


def test_pre_bn_activations_shape_modes_and_buffers():
    net = _tiny_lenet()
    X = torch.rand(12, 1, 16, 16)
    net.train()
    net.bn1.eval()  # a mixed state must come back as it was
    before = {k: v.clone() for k, v in net.state_dict().items()}
    a_eval = be.pre_bn_activations(net, X, "fc1")
    a_train = be.pre_bn_activations(net, X, "fc1", training=True)
    assert a_eval.shape == a_train.shape == (12, 120) and a_eval.dtype == torch.float32
    assert not torch.allclose(a_eval, a_train)  # BN before fc1: running vs batch statistics
    assert net.training and not net.bn1.training and net.bn2.training
    for k, v in net.state_dict().items():  # training=True worked on a copy
        assert torch.equal(v, before[k]), k
    # fc1's output is bn3's input
    seen = []
    h = net.bn3.register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
    net.eval()
    with torch.no_grad():
        net(X)
    h.remove()
    torch.testing.assert_close(a_eval, seen[0])


def test_pre_bn_activations_errors():
    net = _tiny_lenet(None)
    X = torch.rand(3, 1, 16, 16)
    with pytest.raises(ValueError, match="no submodule 'bn9'"):
        be.pre_bn_activations(net, X, "bn9")
    with pytest.raises(ValueError, match=r"needs \(N, D\) activations"):
        be.pre_bn_activations(net, X, "conv1")
    with pytest.raises(TypeError, match="nn.Module"):
        be.pre_bn_activations(lambda X: X, X)
    with pytest.raises(ValueError, match="X must be a tensor"):
        be.pre_bn_activations(net, torch.zeros(0, 1, 16, 16))


def test_default_activations_are_real_and_memoized():
    state = torch.get_rng_state()
    acts, source = be.default_activations(True, dataset="digits")
    assert torch.equal(state, torch.get_rng_state())  # the LeNet is seeded privately
    assert acts.shape == (1024, 120) and torch.isfinite(acts).all()
    assert "digits" in source and "fc1" in source
    acts[0, 0] = 123.0  # callers get a copy
    again, _ = be.default_activations(True, dataset="digits")
    assert again[0, 0] != 123.0
    assert acts.std(dim=0).min() > 0  # every feature varies over the images


# --------------------------------------------------------------------------- the explorer
def test_explorer_running_equals_a_real_layer(explorer):
    k = explorer.feature
    for momentum, batch_size in [(0.1, 8), (0.0, 2), (1.0, 256), (0.99, 32)]:
        means, variances = explorer.running(momentum, batch_size)
        assert means.shape == variances.shape == (explorer.steps + 1,)
        ref = nn.BatchNorm1d(explorer.x.shape[1], momentum=momentum)
        for rows in be.batch_indices(explorer.x.shape[0], batch_size, explorer.steps, seed=explorer.seed):
            ref(explorer.x[rows])
        np.testing.assert_allclose(means[-1], ref.running_mean[k].item(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(variances[-1], ref.running_var[k].item(), rtol=1e-5, atol=1e-6)


def test_explorer_outputs_match_layer_outputs(explorer):
    k, B, eps = explorer.feature, 16, 1e-3
    r = explorer.compute(0.3, eps, B, "eval")
    bn = nn.BatchNorm1d(1, eps=eps, momentum=0.3, affine=False)
    xk = explorer.x_eval[:, k : k + 1]
    ref_train = torch.cat([bn.train()(xk[j : j + B]) for j in range(0, xk.shape[0], B)])[:, 0]
    np.testing.assert_allclose(r["y_train"], ref_train.detach().numpy(), rtol=1e-4, atol=1e-4)
    bn.running_mean.fill_(float(r["means"][-1]))
    bn.running_var.fill_(float(r["vars"][-1]))
    np.testing.assert_allclose(r["y_eval"], bn.eval()(xk)[:, 0].detach().numpy(), rtol=1e-4, atol=1e-4)
    assert r["post"] is r["y_eval"]
    assert r["gap"] == pytest.approx(float(np.sqrt(np.mean((r["y_train"] - r["y_eval"]) ** 2))))


def test_explorer_population_and_defaults(explorer):
    assert explorer.feature == 2
    col = explorer.x[:, 2].double()
    assert explorer.pop_mean == pytest.approx(float(col.mean()))
    assert explorer.pop_var == pytest.approx(float(col.var(unbiased=False)))
    assert explorer.x_eval.shape == (512, 5)
    assert explorer.batch_sizes == be.BATCH_SIZES
    # with momentum 0.1 and batches of 64 the running statistics end near the population:
    # within a few standard errors of a 0.1-weighted average of batch means (std 0.5 / 8)
    means, variances = explorer.running(0.1, 64)
    assert abs(means[-1] - explorer.pop_mean) < 0.15 and abs(variances[-1] / explorer.pop_var - 1) < 0.3
    assert abs(means[0]) == 0 and variances[0] == 1


def test_explorer_edge_cases(explorer):
    # momentum 0: the buffers never move, eval mode does not normalize at all
    r = explorer.compute(0.0, 1e-5, 32, "eval")
    assert np.all(r["means"] == 0) and np.all(r["vars"] == 1)
    xk = explorer.x_eval[:, explorer.feature].numpy()
    np.testing.assert_allclose(r["y_eval"], xk / np.sqrt(1 + 1e-5), rtol=1e-5)
    # tiny eps with batches of two: outputs are +-sqrt(var / (var + eps)), about +-1, never NaN
    r = explorer.compute(1.0, 1e-10, 2, "train")
    assert np.isfinite(r["y_train"]).all() and np.isfinite(r["y_eval"]).all()
    assert np.all(np.abs(r["y_train"]) <= 1 + 1e-3) and np.median(np.abs(r["y_train"])) > 0.999
    # batch size 1: PyTorch's error in train mode, initial buffers in eval mode
    with pytest.raises(ValueError, match=PYTORCH_B1):
        explorer.compute(0.1, 1e-5, 1, "train")
    r = explorer.compute(0.1, 1e-5, 1, "eval")
    assert r["y_train"] is None and r["gap"] is None and np.all(r["vars"] == 1)


def test_explorer_rejects_bad_arguments(explorer):
    with pytest.raises(ValueError, match="mode"):
        explorer.compute(0.1, 1e-5, 8, "test")
    with pytest.raises(ValueError, match="momentum"):
        explorer.compute(1.5, 1e-5, 8, "train")
    with pytest.raises(TypeError, match="momentum"):
        explorer.compute(None, 1e-5, 8, "train")
    with pytest.raises(ValueError, match="eps"):
        explorer.compute(0.1, -1.0, 8, "train")
    with pytest.raises(ValueError, match="exceeds the 600 examples"):
        explorer.compute(0.1, 1e-5, 601, "train")
    with pytest.raises(ValueError, match="feature"):
        be.Explorer(_acts(50), feature=5)
    with pytest.raises(ValueError, match="at least 2 examples"):
        be.Explorer(_acts(1))
    with pytest.raises(ValueError, match="impl"):
        be.Explorer(_acts(50), impl="jax")


def test_small_pool_limits_batch_sizes():
    ex = be.Explorer(_acts(20), steps=5, impl="torch")
    assert ex.batch_sizes == (1, 2, 4, 8, 16)
    assert ex.x_eval.shape[0] == 16
    p = be.make_panel(activations=_acts(20), steps=5, impl="torch")
    assert p.controls["batch_size"].values == (1, 2, 4, 8, 16) and p.defaults["batch_size"] == 16


def test_update_at_every_control_position(explorer):
    """Every combination of the four controls: the artists update, or PyTorch's error is raised."""
    fig = Figure()
    state = explorer.setup(fig)
    count = 0
    for m, eps, b, mode in itertools.product(be.MOMENTA, be.EPSILONS, be.BATCH_SIZES, be.MODES):
        if b == 1 and mode == "train":
            with pytest.raises(ValueError, match=PYTORCH_B1):
                explorer.update(state, m, eps, b, mode)
            continue
        status = explorer.update(state, m, eps, b, mode)
        assert isinstance(status, str) and f"after {explorer.steps} steps" in status
        assert np.isfinite(state["rm"].get_ydata()).all() and np.isfinite(state["rv"].get_ydata()).all()
        post = state["post"].get_data().values
        assert np.isfinite(post).all() and post.sum() > 0
        lo, hi = state["ax_v"].get_ylim()
        assert 0 < lo < hi and np.isfinite(hi)
        count += 1
    assert count == len(be.MOMENTA) * len(be.EPSILONS) * (2 * len(be.BATCH_SIZES) - 1)


# --------------------------------------------------------------------------- the panel
def test_panel_renders_every_value_of_every_control(panel):
    assert set(panel.controls) == {"momentum", "eps", "batch_size", "mode"}
    assert panel.defaults == {"momentum": 0.1, "eps": 1e-5, "batch_size": 32, "mode": "train"}
    for name, spec in panel.controls.items():
        for v in spec._options():
            if name == "batch_size" and v == 1:
                continue
            png = panel.render_png(**{name: v})
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
    for corner in [dict(momentum=0.0, eps=1e-10, batch_size=2, mode="eval"),
                   dict(momentum=1.0, eps=1.0, batch_size=256, mode="train"),
                   dict(momentum=1.0, eps=1e-10, batch_size=1, mode="eval")]:
        assert panel.render_png(**corner)[:4] == b"\x89PNG"


def test_panel_batch_size_one_shows_pytorch_error(panel):
    panel.set(batch_size=32, mode="train")
    assert not panel.error
    good_png = panel._png
    panel.set(batch_size=1)
    assert panel.error and PYTORCH_B1 in panel.status
    # The figure matches the setting: not the last good image, but axes saying why they are empty.
    assert panel._png != good_png and panel._png[:4] == b"\x89PNG"
    state = panel._state
    assert state["blank"].get_text() == be.NO_TRAIN_OUTPUT == state["note"].get_text()
    assert state["post"].get_data().values.sum() == 0 and len(state["scat"].get_offsets()) == 0
    assert np.all(state["rm"].get_ydata() == 0) and np.all(state["rv"].get_ydata() == 1)
    panel.set(batch_size=2)
    assert not panel.error and state["blank"].get_text() == "" and state["note"].get_text() == ""
    panel.set(batch_size=1)
    panel.set(mode="eval")
    assert not panel.error and "Batch size 1" in panel.status and "initial 0 and 1" in panel.status
    panel.set(batch_size=32, mode="train", momentum=0.9)
    assert not panel.error and "OLD value" in panel.status
    panel.set(momentum=0.0)
    assert "never move" in panel.status
    panel.set(**panel.defaults)


def test_panel_widget_and_latency(panel):
    from bnbook.widgets import measure_latency

    box = panel.widget()
    assert box is panel.widget()
    stats = measure_latency(panel, n=8, seed=1)
    assert stats["n"] == 8 and 0 < stats["median_ms"] < 2000


def test_static_html_frames(explorer):
    """The book's kernel-free frames: the batch-size-1 frame carries PyTorch's message."""
    from bnbook.widgets import Choice, Slider

    controls = {"momentum": Slider("momentum", [0.1], 0.1), "eps": Slider("eps", [1e-5], 1e-5),
                "batch_size": Slider("batch size", [1, 32], 32), "mode": Choice("mode", be.MODES, "train")}
    html = Panel(controls, explorer.setup, explorer.update).static_html()
    assert html.count('type="range"') == 3 and "<select" in html
    assert PYTORCH_B1 in html and "initial 0 and 1" in html
    # update() raises DrawnError at batch size 1 in train mode: that frame has its own image (not stale).
    import json
    import re

    data = json.loads(re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S).group(1))
    error_frames = [f for f in data["frames"].values() if f[2]]
    assert len(error_frames) == 1 and PYTORCH_B1 in error_frames[0][1]
    assert error_frames[0][0] >= 0  # an image index, not -1 (keep the previous image)
    good = [f[0] for f in data["frames"].values() if not f[2]]
    assert error_frames[0][0] not in good


def test_make_panel_static_grid_is_small(panel):
    sizes = [len(spec._static_options()) for spec in panel.controls.values()]
    assert int(np.prod(sizes)) <= 64  # the book embeds every combination


def test_make_panel_defaults_use_real_data():
    p = be.make_panel()
    ex = p.explorer
    assert isinstance(p, Panel) and ex.x.shape[1] == 120 and ex.steps == 150 and ex.impl == "bnbook"
    assert "fc1" in p.title
    assert p.render_png()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- training diagnostics
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("norm", [None, "batch"])
def test_mlp_layout(activation, norm):
    net = be.mlp(activation, norm, depth=3, hidden=7, in_features=12, num_classes=4, impl="torch")
    names = [n for n, _ in net.named_children()]
    expected = ["flatten"]
    for i in (1, 2, 3):
        expected += [f"fc{i}"] + ([f"bn{i}"] if norm else []) + [f"act{i}"]
    assert names == expected + ["fc4"]
    act = nn.Sigmoid if activation == "sigmoid" else nn.ReLU
    assert all(isinstance(getattr(net, f"act{i}"), act) for i in (1, 2, 3))
    assert net(torch.zeros(5, 3, 4)).shape == (5, 4)
    with pytest.raises(ValueError, match="activation"):
        be.mlp("tanh")
    with pytest.raises(ValueError, match="norm"):
        be.mlp("relu", "layer")
    with pytest.raises(ValueError, match="depth"):
        be.mlp("relu", depth=0)


def test_record_activations_matches_autograd_and_removes_hooks():
    torch.manual_seed(0)
    net = be.mlp("sigmoid", "batch", depth=2, hidden=6, in_features=5, num_classes=3, impl="torch")
    X, y = torch.randn(9, 5), torch.randint(0, 3, (9,))
    with be.record_activations(net) as rec:
        nn.functional.cross_entropy(net(X), y).backward()
    assert set(rec.values) == set(rec.grads) == {"act1", "act2"}
    # oracle: the same quantities by hand, with retain_grad
    h = net.act1(net.bn1(net.fc1(X)))
    h.retain_grad()
    out = net.fc3(net.act2(net.bn2(net.fc2(h))))
    nn.functional.cross_entropy(out, y).backward()
    np.testing.assert_allclose(rec.values["act1"], h.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(rec.grads["act1"], h.grad.numpy(), rtol=1e-5, atol=1e-8)
    assert all(not m._forward_hooks for m in net.modules())  # hooks removed on exit
    with pytest.raises(RuntimeError):
        with be.record_activations(net, ["act2"]):
            raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in net.modules())  # also after an exception
    with pytest.raises(ValueError, match="no submodule"):
        with be.record_activations(net, ["act9"]):
            pass
    with pytest.raises(TypeError, match="nn.Module"):
        with be.record_activations(lambda x: x):
            pass


def test_update_ratios_and_saturation():
    w = torch.full((2, 2), 2.0, requires_grad=True)  # ||w|| = 4
    (w * 0.5).sum().backward()  # grad 0.5 everywhere: ||grad|| = 1
    np.testing.assert_allclose(be.update_ratios([w], lr=0.1), [np.log10(0.1 * 1 / 4)])
    with pytest.raises(ValueError, match="no gradient"):
        be.update_ratios([torch.ones(2, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        be.update_ratios([w], lr=0.0)
    assert be.saturation(np.array([0.01, 0.5, 0.99, 0.5]), "sigmoid") == 0.5
    assert be.saturation(np.array([0.0, 0.0, 1.0]), "relu") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="activation"):
        be.saturation(np.zeros(3), "tanh")


def _diag_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 1, 4, 4, generator=g)
    y = (X.flatten(1)[:, 0] > 0).long()  # a learnable rule
    return X, y


@pytest.fixture(scope="module")
def diag_results():
    X, y = _diag_data()
    return {
        (act, norm): [
            be.run_diagnostics(act, norm, X, y, X, y, steps=30, batch_size=16, depth=3, hidden=8,
                               seed=s, record_at=(0, -1))
            for s in (0, 1)
        ]
        for act in ("sigmoid", "relu")
        for norm in (None, "batch")
    }


def test_run_diagnostics_records_what_it_says(diag_results):
    r = diag_results[("relu", "batch")][0]
    assert r.layers == ["act1", "act2", "act3"] and r.log10_ratio.shape == (30, 4)
    assert set(r.snapshots) == {0, 29} and np.isfinite(r.log10_ratio).all()
    assert r.snapshots[0].values["act1"].shape == (16, 8) and (r.snapshots[0].values["act1"] >= 0).all()
    assert r.grad_std(0).shape == (3,) and r.saturation(29).shape == (3,) and 0 <= r.test_acc <= 1
    # step 0 is the first batch at the initialization: the same as a fresh net on that batch
    X, y = _diag_data()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = be.mlp("relu", "batch", depth=3, hidden=8, in_features=16)
    rows = be.batch_indices(96, 16, 30, seed=0)[0]
    with be.record_activations(net, ["act2"]) as rec:
        nn.functional.cross_entropy(net(X[rows]), y[rows]).backward()
    np.testing.assert_allclose(r.snapshots[0].grads["act2"], rec.grads["act2"], rtol=1e-5, atol=1e-9)
    again = be.run_diagnostics("relu", "batch", X, y, X, y, steps=30, batch_size=16, depth=3, hidden=8,
                               seed=0, record_at=(0, -1))
    np.testing.assert_array_equal(again.log10_ratio, r.log10_ratio)  # reproducible
    state = torch.get_rng_state()
    be.run_diagnostics("sigmoid", None, X, y, X, y, steps=2, batch_size=16, depth=1, hidden=4)
    assert torch.equal(state, torch.get_rng_state())  # private seeding
    with pytest.raises(ValueError, match="record_at"):
        be.run_diagnostics("relu", None, X, y, X, y, steps=5, record_at=(5,))
    with pytest.raises(ValueError, match="same number of rows"):
        be.run_diagnostics("relu", None, X, y[:3], X, y, steps=5)


def test_diagnostic_summaries_and_figures(diag_results):
    r = diag_results[("sigmoid", None)][0]
    mean = r.log10_ratio[15:, :3].mean(axis=0)
    assert be.layer_spread(r) == pytest.approx(mean.max() - mean.min())
    assert be.early_level(r) == pytest.approx(r.log10_ratio[:3, :3].mean())
    with pytest.raises(ValueError, match="last_fraction"):
        be.layer_spread(r, 0)
    assert be.mean_std([1.0, 2.0, 3.0]) == "2.00 ± 1.00"  # sample std, ddof=1
    assert be.mean_std([0.5]) == "0.50 (n = 1)"  # never "± 0.00" for one value
    lines = be.summarize(diag_results)
    assert len(lines) == 8 and all(" ± " in line for line in lines)
    assert sum(line.startswith("relu:") for line in lines) == 4
    assert all(line.endswith(("True", "False")) for line in lines if "with BN in all" in line)
    with pytest.raises(ValueError, match="with as without BN"):
        be.summarize({("relu", None): diag_results[("relu", None)]})
    runs = {f"{a} {n}": v[0] for (a, n), v in diag_results.items()}
    for fig in (be.plot_distributions(runs, 29), be.plot_update_ratios(runs, window=5)):
        assert isinstance(fig, Figure) and len(fig.axes) in (4, 8)
        assert all(ax.get_ylabel() for ax in fig.axes)  # a y-label on every axis
        fig.canvas.draw() if fig.canvas else None
    with pytest.raises(ValueError, match="no snapshot"):
        be.plot_distributions(runs, 7)
    with pytest.raises(TypeError, match="DiagnosticRun"):
        be.plot_update_ratios({})
