"""Tests for bnbook.train on tiny synthetic problems (no dataset downloads)."""

import json
import math
import random
import re
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bnbook import train as tr


def blobs(n: int, seed: int, num_classes: int = 3):
    """Linearly separable classes: images (n, 1, 4, 4) whose mean depends on the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    centers = torch.randn(num_classes, 1, 4, 4, generator=torch.Generator().manual_seed(123)) * 2
    X = centers[y] + 0.5 * torch.randn(n, 1, 4, 4, generator=g)
    return X, y


def loaders(n_train=300, n_test=150, batch_size=32, shuffle=True):
    train_ds = TensorDataset(*blobs(n_train, seed=1))
    test_ds = TensorDataset(*blobs(n_test, seed=2))
    return (
        DataLoader(train_ds, batch_size=batch_size, shuffle=shuffle),
        DataLoader(test_ds, batch_size=64),
    )


def small_net(bn: bool = True) -> nn.Sequential:
    layers = [nn.Flatten(), nn.Linear(16, 32)]
    if bn:
        layers.append(nn.BatchNorm1d(32))
    layers += [nn.ReLU(), nn.Linear(32, 3)]
    return nn.Sequential(*layers)


def test_train_learns_separable_problem():
    train_iter, test_iter = loaders()
    net = small_net()
    h = tr.train(net, train_iter, test_iter, num_epochs=3, lr=0.5, seed=0, progress=False)
    assert h.num_epochs == 3
    for values in (h.train_loss, h.train_acc, h.test_acc, h.examples_per_sec, h.epoch_time):
        assert len(values) == 3 and all(math.isfinite(v) and v > 0 for v in values)
    assert h.test_acc[-1] >= 0.95 and h.train_acc[-1] >= 0.9
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.num_steps == 3 * len(train_iter)
    assert h.device == "cpu" and h.steps == []
    assert tr.evaluate_accuracy(net, test_iter) == pytest.approx(h.test_acc[-1])


def test_history_summary_and_dict():
    h = tr.History([0.2734], [0.8991], [0.8072], [12345.61], [1.0], device="cpu")
    assert h.summary() == "loss 0.273, train acc 0.899, test acc 0.807, 12345.6 examples/sec on cpu"
    assert tr.History().summary() == "no completed epochs"
    h.steps.append((10, 0.5))
    d = h.as_dict()
    assert d["steps"] == [[10, 0.5]] and d["train_loss"] == [0.2734]
    json.dumps(d)  # serializable


def test_summary_of_real_run_matches_format():
    h = tr.train(small_net(), *loaders(), num_epochs=1, lr=0.1, seed=0, progress=False)
    assert re.fullmatch(
        r"loss \d\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}, \d+\.\d examples/sec on cpu",
        h.summary(),
    )


def test_loss_is_mean_over_examples():
    # batches of 4, 4, 2: a mean of batch means would weight the last two examples double
    X, y = blobs(10, seed=3)
    train_iter = DataLoader(TensorDataset(X, y), batch_size=4, shuffle=False)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        expected = nn.functional.cross_entropy(net(X), y).item()
        correct = (net(X).argmax(1) == y).float().mean().item()
    h = tr.train(net, train_iter, train_iter, 1, lr=1e-30, init=None, progress=False)
    assert h.train_loss[0] == pytest.approx(expected, rel=1e-5)
    assert h.train_acc[0] == pytest.approx(correct)


def test_seeding_makes_runs_identical():
    def run():
        tr.seed_everything(7)
        net = small_net()
        h = tr.train(net, *loaders(), num_epochs=2, lr=0.3, seed=11, progress=False)
        return h, [p.detach().clone() for p in net.parameters()]

    (h1, p1), (h2, p2) = run(), run()
    assert h1.train_loss == h2.train_loss and h1.test_acc == h2.test_acc
    for a, b in zip(p1, p2):
        assert torch.equal(a, b)
    tr.seed_everything(8)
    h3 = tr.train(small_net(), *loaders(), num_epochs=2, lr=0.3, seed=12, progress=False)
    assert h3.train_loss != h1.train_loss


def test_seed_everything_seeds_all_generators():
    tr.seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    tr.seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    with pytest.raises(ValueError, match="seed"):
        tr.seed_everything(-1)
    with pytest.raises(TypeError, match="seed"):
        tr.seed_everything(1.5)


class NaNAfter(nn.Module):
    """Passes its input through, but returns NaN from the ``n``-th training-mode call on."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, x):
        self.calls += self.training
        return x * float("nan") if self.calls >= self.n else x


def test_nan_loss_raises_with_epoch_and_step():
    train_iter, test_iter = loaders(n_train=64, batch_size=16)  # 4 steps per epoch
    net = nn.Sequential(small_net(bn=False), NaNAfter(6))
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 6.*lower learning rate \(lr=0.1\)"):
        tr.train(net, train_iter, test_iter, 3, lr=0.1, progress=False)


def test_divergence_raises():
    train_iter, test_iter = loaders(n_train=64, batch_size=16)
    with pytest.raises(FloatingPointError, match="diverged"):
        tr.train(small_net(bn=False), train_iter, test_iter, 20, lr=1e30, progress=False)


def test_progress_bar_on_and_off(capfd):
    train_iter, test_iter = loaders(n_train=64, batch_size=16)
    tr.train(small_net(), train_iter, test_iter, 2, lr=0.1, progress=True)
    err = capfd.readouterr().err
    assert "epoch 2/2" in err and "8/8" in err
    tr.train(small_net(), train_iter, test_iter, 2, lr=0.1, progress=False)
    out = capfd.readouterr()
    assert out.err == "" and out.out == ""


def test_live_plot_outside_ipython_is_noop(capfd):
    train_iter, test_iter = loaders(n_train=64, batch_size=16)
    assert not tr._in_jupyter()
    h = tr.train(small_net(), train_iter, test_iter, 1, lr=0.1, progress=False, live_plot=True)
    assert h.num_epochs == 1
    assert capfd.readouterr().out == ""


def test_live_plot_in_jupyter_updates_one_display(monkeypatch):
    import IPython.display

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=False):
        shown.append(("display", obj))
        assert display_id is True
        return Handle()

    monkeypatch.setattr(tr, "_in_jupyter", lambda: True)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    train_iter, test_iter = loaders(n_train=64, batch_size=16)
    tr.train(small_net(), train_iter, test_iter, 3, lr=0.1, progress=False, live_plot=True)
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    assert all(obj.data[:8] == b"\x89PNG\r\n\x1a\n" for _, obj in shown)


def test_eval_every_records_steps():
    train_iter, test_iter = loaders(n_train=96, batch_size=16)  # 6 steps per epoch
    h = tr.train(small_net(), train_iter, test_iter, 2, lr=0.5, seed=0, progress=False, eval_every=4)
    assert [s for s, _ in h.steps] == [0, 4, 8, 12]
    assert all(0.0 <= acc <= 1.0 for _, acc in h.steps)
    assert h.steps[-1][1] == pytest.approx(h.test_acc[-1])  # step 12 is the end of epoch 2
    assert h.steps[-1][1] > h.steps[0][1]


def test_callback_every_step():
    seen = []
    train_iter, test_iter = loaders(n_train=64, batch_size=16)
    net = small_net()

    def callback(step, model, loss):
        assert model is net and model.training
        seen.append((step, loss))

    tr.train(net, train_iter, test_iter, 2, lr=0.1, progress=False, callback=callback)
    assert [s for s, _ in seen] == list(range(1, 9))
    assert all(isinstance(loss, float) and loss > 0 for _, loss in seen)


class SlowLoader:
    """A test loader that sleeps while evaluated: evaluation must not count as training time."""

    def __init__(self, loader, delay):
        self.loader, self.delay = loader, delay

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        time.sleep(self.delay)
        yield from self.loader


def test_examples_per_sec_excludes_evaluation():
    train_iter, test_iter = loaders(n_train=64, batch_size=32)
    h = tr.train(small_net(), train_iter, SlowLoader(test_iter, 0.3), 1, lr=0.1, progress=False, eval_every=1)
    train_seconds = 64 / h.examples_per_sec[0]
    # the epoch contains 3 evaluations (after steps 1 and 2, and at the end), each >= 0.3 s;
    # training time must leave all of them out (load-independent: no absolute time limit)
    assert train_seconds <= h.epoch_time[0] - 3 * 0.3 + 1e-3


def test_optimizers():
    train_iter, test_iter = loaders()
    h = tr.train(small_net(), train_iter, test_iter, 2, lr=0.01, optimizer="adam", seed=0, progress=False)
    assert h.test_acc[-1] > 0.9
    h = tr.train(
        small_net(),
        train_iter,
        test_iter,
        2,
        lr=1.0,
        seed=0,
        progress=False,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.2, momentum=0.9),
    )
    assert h.test_acc[-1] > 0.9


def test_init_xavier_and_none():
    captured = {}

    def capture(params):
        params = list(params)
        captured["w"] = params[0].detach().clone()  # first Linear weight, after init
        return torch.optim.SGD(params, lr=1e-3)

    train_iter, test_iter = loaders(n_train=32, batch_size=32)
    net = small_net(bn=False)
    before = net[1].weight.detach().clone()
    tr.train(net, train_iter, test_iter, 1, lr=1.0, init=None, optimizer=capture, progress=False)
    assert torch.equal(captured["w"], before)

    net = small_net(bn=False)
    before = net[1].weight.detach().clone()
    tr.train(net, train_iter, test_iter, 1, lr=1.0, init="xavier", optimizer=capture, progress=False)
    bound = math.sqrt(6 / (16 + 32))  # xavier_uniform_: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    assert not torch.equal(captured["w"], before)
    assert captured["w"].abs().max() <= bound
    assert captured["w"].abs().max() > 0.9 * bound  # PyTorch's default bound is 1/sqrt(16) = 0.25 < 0.32


def test_lazy_module_with_xavier_raises():
    net = nn.Sequential(nn.Flatten(), nn.LazyLinear(3))
    with pytest.raises(ValueError, match="lazy"):
        tr.train(net, *loaders(n_train=32), 1, lr=0.1, progress=False)


def test_evaluate_accuracy_restores_modes():
    _, test_iter = loaders()
    net = small_net()
    net.train()
    net[2].eval()  # a mixed state must come back exactly
    modes = [m.training for m in net.modules()]
    acc = tr.evaluate_accuracy(net, test_iter)
    assert [m.training for m in net.modules()] == modes
    net.eval()
    with torch.no_grad():
        X, y = test_iter.dataset.tensors
        expected = (net(X).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(expected)
    assert tr.evaluate_accuracy(net, test_iter, device="cpu") == pytest.approx(expected)
    assert not any(m.training for m in net.modules())


def test_evaluate_accuracy_restores_mode_after_error():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    net = nn.Sequential(Boom())
    net.train()
    with pytest.raises(RuntimeError, match="boom"):
        tr.evaluate_accuracy(net, loaders()[1])
    assert net.training and net[0].training


def test_select_device():
    assert tr.select_device("cpu") == torch.device("cpu")
    assert tr.select_device(torch.device("cpu")) == torch.device("cpu")
    auto = tr.select_device()
    if not torch.cuda.is_available() and not tr._mps_available():
        assert auto == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            tr.select_device("cuda")
        with pytest.raises(ValueError, match="MPS is not available"):
            tr.select_device("mps")
    with pytest.raises(ValueError, match="not a device"):
        tr.select_device("gpu0")
    with pytest.raises(TypeError, match="prefer"):
        tr.select_device(0)


def test_argument_validation():
    train_iter, test_iter = loaders(n_train=32)
    net = small_net()
    empty = DataLoader(TensorDataset(torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long)), batch_size=4)
    cases = [
        (dict(num_epochs=0), ValueError, "num_epochs"),
        (dict(num_epochs=1.5), TypeError, "num_epochs"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(lr=float("nan")), ValueError, "lr"),
        (dict(lr=float("inf")), ValueError, "lr"),
        (dict(lr="0.1"), TypeError, "lr"),
        (dict(train_iter=empty), ValueError, "train_iter is empty"),
        (dict(train_iter=iter([])), ValueError, "no examples"),  # no len(): found while iterating
        (dict(test_iter=empty), ValueError, "test_iter is empty"),
        (dict(optimizer="rmsprop"), ValueError, "optimizer"),
        (dict(optimizer=3), TypeError, "optimizer"),
        (dict(optimizer=lambda p: None), TypeError, "Optimizer"),
        (dict(init="he"), ValueError, "init"),
        (dict(eval_every=0), ValueError, "eval_every"),
        (dict(callback=5), TypeError, "callback"),
        (dict(net="lenet"), TypeError, "net"),
        (dict(device="tpu"), ValueError, "device"),
    ]
    for override, exc, pattern in cases:
        kwargs = dict(net=net, train_iter=train_iter, test_iter=test_iter, num_epochs=1, lr=0.1, progress=False)
        kwargs.update(override)
        with pytest.raises(exc, match=pattern):
            tr.train(**kwargs)
    with pytest.raises(ValueError, match="data_iter is empty"):
        tr.evaluate_accuracy(net, empty)
    with pytest.raises(TypeError, match="net"):
        tr.evaluate_accuracy("net", test_iter)
    with pytest.raises(ValueError, match="no examples"):
        tr.evaluate_accuracy(net, iter([]))  # no len(): only detected while iterating


def test_bnbook_and_torch_lenet_train_alike():
    from bnbook import models

    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=False)
    histories, states = [], []
    for impl in ("bnbook", "torch"):
        torch.manual_seed(0)
        net = models.lenet("batch", impl=impl)
        histories.append(tr.train(net, loader, loader, 2, lr=0.9, seed=1, progress=False))
        states.append(net.state_dict())
    a, b = histories
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-4)
    assert a.test_acc == b.test_acc
    assert states[0].keys() == states[1].keys()
    for key in states[0]:  # weights and running statistics after 4 SGD steps
        torch.testing.assert_close(states[0][key], states[1][key], rtol=1e-3, atol=1e-4)
