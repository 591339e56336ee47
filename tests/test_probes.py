"""Tests for bnbook.probes: statistics against direct computation, hook lifecycle, step control."""

import gc
import weakref

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bnbook import train as tr
from bnbook.probes import ActivationProbe


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Sigmoid(), nn.Linear(16, 4), nn.Sigmoid()
    )


def num_hooks(net: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())


def capture(module: nn.Module, which: str = "output"):
    """Record the module's input/output with a separate hook: the oracle for the probe."""
    seen = []

    def hook(m, args, out):
        seen.append((args[0] if which == "input" else out).detach().clone())

    return seen, module.register_forward_hook(hook)


def test_statistics_match_direct_computation():
    net = mlp()
    seen, handle = capture(net[3], "input")
    edges = np.linspace(-3, 3, 13)
    with ActivationProbe(net, ["3"], where="input", percentiles=(15, 50, 85), bins=edges) as probe:
        for _ in range(3):
            net(torch.randn(32, 8) * 2)
    handle.remove()
    steps, p = probe.percentiles("3")
    assert steps.tolist() == [0, 1, 2] and p.shape == (3, 3)
    _, mean = probe.mean("3")
    _, std = probe.std("3")
    _, e, counts = probe.histograms("3")
    for t, x in enumerate(seen):
        x = x.numpy().ravel().astype(np.float64)
        np.testing.assert_allclose(p[t], np.percentile(x, [15, 50, 85]), rtol=1e-5, atol=1e-6)
        assert mean[t] == pytest.approx(x.mean(), abs=1e-6)
        assert std[t] == pytest.approx(x.std(), rel=1e-5)  # population std (ddof=0)
        np.testing.assert_array_equal(counts[t], np.histogram(x, bins=edges)[0])
    np.testing.assert_array_equal(e, edges)


def test_histogram_edge_cases_match_numpy():
    # values exactly on edges, the closed last edge, and values outside the range
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.0, 2.5, 3.0])
    net = nn.Sequential(nn.Identity())
    with ActivationProbe(net, bins=4, range=(-1.0, 1.0)) as probe:
        net(x)
    steps, edges, counts = probe.histograms("0")
    np.testing.assert_array_equal(counts[0], np.histogram(x.numpy(), bins=4, range=(-1, 1))[0])
    _, _, density = probe.histograms("0", density=True)
    # rows integrate to the fraction of values inside [low, high]: 6 of 9
    assert (density[0] * np.diff(edges)).sum() == pytest.approx(6 / 9)


def test_output_and_selection_by_type():
    net = mlp()
    seen, handle = capture(net[5], "output")
    with ActivationProbe(net, (nn.Sigmoid,)) as probe:
        net(torch.randn(10, 8))
    handle.remove()
    assert probe.names == ["3", "5"]
    _, mean = probe.mean("5")
    assert mean[0] == pytest.approx(seen[0].mean().item(), abs=1e-6)
    assert ActivationProbe(net, nn.Linear).names == ["1", "4"]


def test_default_probes_all_leaf_modules():
    net = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 2)))
    assert ActivationProbe(net).names == ["0", "1.0", "1.1"]


def test_hooks_removed_after_with_block_and_after_exception():
    net = mlp()
    before = num_hooks(net)
    with ActivationProbe(net) as probe:
        assert probe.attached and num_hooks(net) > before
        net(torch.randn(4, 8))
    assert not probe.attached and num_hooks(net) == before
    with pytest.raises(RuntimeError, match="inside"), ActivationProbe(net):
        raise RuntimeError("inside the block")
    assert num_hooks(net) == before
    net(torch.randn(4, 8))  # still works, nothing recorded after exit
    assert probe.steps("1").tolist() == [0]


def test_exception_in_forward_does_not_block_later_steps():
    net = mlp()
    with ActivationProbe(net, ["1"]) as probe:
        with pytest.raises(RuntimeError):
            net(torch.randn(4, 3))  # wrong feature count
        net(torch.randn(4, 8))
    assert probe.steps("1").tolist() == [1]  # the failed pass was step 0


def test_active_flag_every_and_step():
    net = mlp()
    with ActivationProbe(net, ["3"], every=3) as probe:
        for i in range(7):
            probe.active = i != 6  # pause recording for the last pass
            net(torch.randn(4, 8))
    assert probe.steps("3").tolist() == [0, 3]  # step 6 was not recorded
    with probe:
        probe.active = True
        probe.step(100)
        net(torch.randn(4, 8))  # step 100 is not a multiple of every=3: not recorded
        probe.step(102)
        net(torch.randn(4, 8))
    assert probe.steps("3").tolist() == [0, 3, 102]
    _, p = probe.percentiles("3")
    assert p.shape == (3, 3)
    probe.clear()
    assert probe.steps("3").size == 0 and probe.percentiles("3")[1].shape == (0, 3)


def test_mode_train_ignores_eval_passes():
    net = mlp()
    with ActivationProbe(net, ["3"]) as probe:
        net.train()
        net(torch.randn(4, 8))
        net.eval()
        with torch.no_grad():
            net(torch.randn(4, 8))
        net.train()
        net(torch.randn(4, 8))
    assert probe.steps("3").tolist() == [0, 1]
    with ActivationProbe(net, ["3"], mode="eval") as probe:
        net.train()
        net(torch.randn(4, 8))
        net.eval()
        with torch.no_grad():  # works under no_grad
            net(torch.randn(4, 8))
    assert probe.steps("3").tolist() == [0]
    with ActivationProbe(net, ["3"], mode="any") as probe:
        net(torch.randn(4, 8))
        net.train()
        net(torch.randn(4, 8))
    assert probe.steps("3").tolist() == [0, 1]


def test_probe_during_train_matches_optimizer_steps():
    X = torch.randn(64, 8)
    y = (X[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(X, y), batch_size=16)  # 4 steps per epoch
    net = mlp()
    with ActivationProbe(net, ["3"], where="input", every=2) as probe:
        tr.train(net, loader, loader, 2, lr=0.1, progress=False, eval_every=3)
    # evaluation passes (eval mode) are not counted: 8 training passes = steps 0..7
    assert probe.steps("3").tolist() == [0, 2, 4, 6]


def test_does_not_keep_tensors_alive():
    net = mlp()
    refs = []
    handle = net[3].register_forward_hook(lambda m, a, out: refs.append(weakref.ref(out)))
    with ActivationProbe(net, ["3"], bins=5, range=(0, 1)) as probe, torch.no_grad():
        net(torch.randn(4, 8))
    handle.remove()
    gc.collect()
    assert refs[0]() is None
    rec = probe._records["3"]
    stored = rec.mean + rec.std + rec.percentiles + rec.counts
    assert not any(isinstance(v, torch.Tensor) for v in stored)


def test_shared_module_recorded_once_per_step():
    act = nn.Tanh()
    net = nn.Sequential(act, nn.Linear(2, 2), act)
    with ActivationProbe(net, ["0"]) as probe:
        x = torch.randn(3, 2)
        net(x)
    _, mean = probe.mean("0")
    assert mean.tolist() == pytest.approx([torch.tanh(x).mean().item()])


def test_tuple_output_and_integer_input():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x * 2

    net = nn.Sequential(Pair())
    with ActivationProbe(net, ["0"]) as probe:
        net(torch.arange(4))  # int64 input: statistics in float
    assert probe.mean("0")[1].tolist() == [1.5]


def test_non_tensor_output_raises():
    class Text(nn.Module):
        def forward(self, x):
            return "text"

    net = nn.Sequential(Text())
    with pytest.raises(TypeError, match="not a tensor"), ActivationProbe(net):
        net(torch.zeros(1))


def test_argument_validation():
    net = mlp()
    with pytest.raises(ValueError, match=r"unknown module name\(s\) \['fc9'\]; available: \['0', '1'"):
        ActivationProbe(net, ["fc9"])
    with pytest.raises(ValueError, match="no module of type"):
        ActivationProbe(net, (nn.Conv2d,))
    with pytest.raises(TypeError, match="modules"):
        ActivationProbe(net, [1, 2])
    with pytest.raises(TypeError, match="net"):
        ActivationProbe("net")
    with pytest.raises(ValueError, match="where"):
        ActivationProbe(net, where="grad")
    with pytest.raises(ValueError, match="mode"):
        ActivationProbe(net, mode="test")
    with pytest.raises(ValueError, match="percentiles"):
        ActivationProbe(net, percentiles=(50, 150))
    with pytest.raises(ValueError, match="range"):
        ActivationProbe(net, bins=10)
    with pytest.raises(ValueError, match="low < high"):
        ActivationProbe(net, bins=10, range=(1, 0))
    with pytest.raises(ValueError, match="pair of finite"):
        ActivationProbe(net, bins=10, range=(0, float("inf")))
    with pytest.raises(ValueError, match="increasing"):
        ActivationProbe(net, bins=[0, 1, 1])
    with pytest.raises(ValueError, match="range must be None"):
        ActivationProbe(net, bins=[0, 1, 2], range=(0, 2))
    with pytest.raises(ValueError, match="only used with bins"):
        ActivationProbe(net, range=(0, 2))
    with pytest.raises(ValueError, match="every"):
        ActivationProbe(net, every=0)
    with pytest.raises(ValueError, match="no submodules"):
        ActivationProbe(nn.Linear(2, 2))
    probe = ActivationProbe(net, ["1"])
    with pytest.raises(ValueError, match=r"not probed; probed modules: \['1'\]"):
        probe.percentiles("3")
    with pytest.raises(ValueError, match="bins="):
        probe.histograms("1")
    with pytest.raises(ValueError, match="step"):
        probe.step(-1)
    with probe, pytest.raises(RuntimeError, match="already attached"):
        probe.__enter__()
    assert "detached" in repr(probe)


def test_large_tensors_use_numpy_percentiles(monkeypatch):
    from bnbook import probes

    monkeypatch.setattr(probes, "_QUANTILE_MAX", 10)  # pretend 12 values are too many for torch
    x = torch.linspace(-1, 5, 12)
    net = nn.Sequential(nn.Identity())
    with ActivationProbe(net, "0", percentiles=(10, 90)) as probe:  # a single name works too
        net(x)
    np.testing.assert_allclose(probe.percentiles("0")[1][0], np.percentile(x.numpy(), [10, 90]), rtol=1e-6)


def test_empty_activation_gives_nan_statistics():
    net = nn.Sequential(nn.Identity())
    with ActivationProbe(net, bins=2, range=(0, 1)) as probe:
        net(torch.zeros(0, 3))
    assert np.isnan(probe.percentiles("0")[1]).all() and np.isnan(probe.std("0")[1]).all()
    assert probe.histograms("0")[2].tolist() == [[0, 0]]


def test_keyword_only_input_raises():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(input=x)

    net = Net()
    with pytest.raises(TypeError, match="without a positional input"), ActivationProbe(net, ["lin"], where="input"):
        net(torch.zeros(1, 2))


# --------------------------------------------------------------------------- layer_output
def test_layer_output_is_the_submodules_output_and_leaves_the_net_as_it_was():
    from bnbook.probes import layer_output

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).eval()
    X = torch.randn(16, 4) * 3 + 1
    expected = net[:3](X)
    assert torch.equal(layer_output(net, X, "2"), expected)
    running = net[1].running_mean.clone()
    train_out = layer_output(net, X, "1", training=True)  # a copy runs in training mode
    assert torch.allclose(train_out.mean(0), torch.zeros(6), atol=1e-5)
    assert torch.equal(net[1].running_mean, running) and not net.training and not net[1].training
    with pytest.raises(ValueError, match="no submodule 'bn9'"):
        layer_output(net, X, "bn9")
    with pytest.raises(TypeError, match="nn.Module"):
        layer_output("net", X, "1")
    with pytest.raises(ValueError, match="X must be a tensor"):
        layer_output(net, torch.zeros(3), "1")
