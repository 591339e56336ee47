"""Tests of bnbook.inference.fold_batch_norm: the folded copy computes what the original computes."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
import torchvision
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from bnbook import layers, models
from bnbook.inference import FoldReport, fold_batch_norm

RTOL = {torch.float32: 1e-5, torch.float64: 1e-10}
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, layers.BatchNorm1d, layers.BatchNorm2d, layers.BatchNorm3d)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small CPU convolutions on a shared 2-core machine: one thread is fast, several spin and wait."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics and affine parameters in every BatchNorm (fresh ones are the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BN_TYPES) and m.running_mean is not None:
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) * 3 + 0.1)
                if m.weight is not None:
                    m.weight.copy_(torch.randn(c, generator=g))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(c, generator=g))
    return model


def max_rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max |out - ref| / max |ref|."""
    assert out.shape == ref.shape and out.dtype == ref.dtype
    return ((out - ref).abs().max() / ref.abs().max()).item()


def check_same_function(model: nn.Module, folded: nn.Module, x: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        ref, out = model(x), folded(x)
    err = max_rel_error(out, ref)
    assert err <= RTOL[x.dtype], f"relative error {err:.2e} > {RTOL[x.dtype]:.0e}"
    return err


def count_bn(model: nn.Module) -> int:
    return sum(isinstance(m, BN_TYPES) for m in model.modules())


def lenet_like(bn_impl) -> nn.Sequential:
    """conv(bias) - BN - ReLU - pool - conv(no bias) - BN - ReLU - pool - flatten - fc - BN1d - ReLU - fc."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        bn_impl.BatchNorm2d(6),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5, bias=False),
        bn_impl.BatchNorm2d(16, affine=False),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        bn_impl.BatchNorm1d(120),
        nn.ReLU(),
        nn.Linear(120, 10),
    )


# --- same function ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bn_impl", [nn, layers], ids=["torch", "bnbook"])
def test_lenet_like_sequential(bn_impl, dtype):
    torch.manual_seed(0)
    model = randomize_bn(lenet_like(bn_impl)).to(dtype)
    folded, report = fold_batch_norm(model, return_report=True)
    assert report.folded == [("0", "1"), ("4", "5"), ("9", "10")]
    assert report.skipped == [] and report.warnings == [] and report.traced
    assert count_bn(folded) == 0 and all(isinstance(folded[i], nn.Identity) for i in (1, 5, 10))
    assert isinstance(folded[4].bias, nn.Parameter) and folded[4].bias.dtype == dtype  # created for bias=False
    check_same_function(model, folded, torch.randn(4, 1, 28, 28, dtype=dtype))


@pytest.mark.parametrize("impl", ["bnbook", "torch"])
def test_book_lenet(impl):
    torch.manual_seed(0)
    model = randomize_bn(models.lenet(norm="batch", impl=impl))
    folded, report = fold_batch_norm(model, return_report=True)
    assert report.folded == [("conv1", "bn1"), ("conv2", "bn2"), ("fc1", "bn3"), ("fc2", "bn4")]
    assert count_bn(folded) == 4 - len(report.folded) == 0
    check_same_function(model, folded, torch.randn(8, 1, 28, 28))
    check_same_function(model.double(), fold_batch_norm(model.double()), torch.randn(8, 1, 28, 28, dtype=torch.float64))


@pytest.fixture(scope="module", params=["resnet18", "mobilenet_v2"])
def torchvision_model(request):
    torch.manual_seed(0)
    model = randomize_bn(getattr(torchvision.models, request.param)(weights=None, num_classes=10))
    return request.param, model.eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torchvision_models(torchvision_model, dtype):
    name, model = torchvision_model
    model = copy.deepcopy(model).to(dtype)
    folded, report = fold_batch_norm(model, return_report=True)
    num_bn = {"resnet18": 20, "mobilenet_v2": 52}[name]
    assert count_bn(model) == len(report.folded) == num_bn and report.skipped == []
    assert type(folded) is type(model)
    # no BatchNorm left anywhere in the folded model's graph
    graph = fx.symbolic_trace(folded).graph
    called = [folded.get_submodule(n.target) for n in graph.nodes if n.op == "call_module"]
    assert not any(isinstance(m, BN_TYPES) for m in called) and count_bn(folded) == 0
    assert not any("batch_norm" in str(n.target) for n in graph.nodes)
    size = 64 if dtype == torch.float32 else 32  # float64 depthwise convolutions are slow on CPU
    x = torch.randn(1, 3, size, size, dtype=dtype, generator=torch.Generator().manual_seed(1))
    check_same_function(model, folded, x)


@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_fuse_conv_bn_eval(bias):
    torch.manual_seed(0)
    model = randomize_bn(nn.Sequential(nn.Conv2d(3, 8, 3, bias=bias), nn.BatchNorm2d(8))).eval()
    ours = fold_batch_norm(model)[0]
    theirs = fuse_conv_bn_eval(model[0], model[1])
    torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.bias, theirs.bias, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dims,groups", [(1, 1), (2, 1), (2, 2), (3, 3)])
def test_conv_transpose_and_groups(dims, groups):
    """ConvTranspose's weight is (C_in, C_out/g, *k): folded per group, it still gives the same output."""
    torch.manual_seed(0)
    conv_t = getattr(nn, f"ConvTranspose{dims}d")(6, 12, 3, stride=2, groups=groups)
    conv = getattr(nn, f"Conv{dims}d")(12, 6, 3, padding=1, groups=groups, padding_mode="reflect")
    bn_t, bn = getattr(nn, f"BatchNorm{dims}d")(12), getattr(nn, f"BatchNorm{dims}d")(6)
    model = randomize_bn(nn.Sequential(conv_t, bn_t, nn.ReLU(), conv, bn)).double()
    folded, report = fold_batch_norm(model, return_report=True)
    assert report.folded == [("0", "1"), ("3", "4")]
    check_same_function(model, folded, torch.randn(2, 6, *[5] * dims, dtype=torch.float64))
    if groups == 1:  # torch's transpose=True fusion handles groups=1 only
        theirs = fuse_conv_bn_eval(model[0], model[1], transpose=True)
        torch.testing.assert_close(folded[0].weight, theirs.weight, rtol=1e-12, atol=1e-12)


def test_original_untouched():
    torch.manual_seed(0)
    model = randomize_bn(lenet_like(nn)).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    folded = fold_batch_norm(model)
    assert all(m.training for m in model.modules())
    assert not any(m.training for m in folded.modules())
    assert list(model.parameters()) == params and model[4].bias is None and count_bn(model) == 3
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(p is not q for p, q in zip(model.parameters(), folded.parameters()))


# --- unsupported patterns: left unfolded and reported ----------------------------------------


class AddThenBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x) + x)


class TwoConsumers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class ConvTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn2(self.conv(torch.relu(self.bn(self.conv(x)))))


class UnusedBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.spare = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x))


class ScaledBN(nn.BatchNorm2d):
    def forward(self, input):
        return 2 * super().forward(input)


def _hooked():
    model = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    model[1].register_forward_hook(lambda m, i, o: o * 2)
    return model


UNSUPPORTED = {
    "after_add": (AddThenBN, [], [("bn", "a add() call")]),
    "after_relu": (lambda: nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.BatchNorm2d(4)), [], [("2", "'1'")]),
    "two_consumers": (TwoConsumers, [], [("bn", "also feeds")]),
    "no_running_stats": (
        lambda: nn.Sequential(nn.Conv2d(4, 4, 1), layers.BatchNorm2d(4, track_running_stats=False)),
        [],
        [("1", "track_running_stats=False")],
    ),
    "conv_called_twice": (ConvTwice, [], [("bn", "more than once"), ("bn2", "more than once")]),
    "unused_bn": (UnusedBN, [("conv", "bn")], [("spare", "never called")]),
    "bn_hook": (_hooked, [], [("1", "hooks")]),
    "bn_subclass": (lambda: nn.Sequential(nn.Conv2d(4, 4, 1), ScaledBN(4)), [], [("1", "overrides forward")]),
    "bn_after_bn": (lambda: nn.Sequential(nn.BatchNorm2d(4), nn.BatchNorm2d(4)), [], [("0", "input"), ("1", "'0'")]),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_pattern_left_unfolded_and_reported(case):
    build, folded_pairs, skipped = UNSUPPORTED[case]
    torch.manual_seed(0)
    model = randomize_bn(build())
    folded, report = fold_batch_norm(model, return_report=True)
    assert report.folded == folded_pairs
    assert [name for name, _ in report.skipped] == [name for name, _ in skipped]
    for (_, reason), (_, expected) in zip(report.skipped, skipped):
        assert expected in reason, reason
    assert count_bn(folded) == count_bn(model) - len(folded_pairs)
    assert all(name in str(report) for name, _ in skipped)
    check_same_function(model, folded, torch.randn(2, 4, 6, 6, dtype=torch.float32))


def test_mismatched_layouts_are_skipped_without_running():
    """Cases whose original would fail at run time are skipped, not folded into nonsense."""
    cases = {
        "dims": (nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm1d(4)), "BatchNorm1d after Conv2d"),
        "linear_2d": (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4)), "BatchNorm2d after Linear"),
        "channels": (nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(5)), "4 output channels"),
        "dtype": (nn.Sequential(nn.Conv2d(3, 4, 1).double(), nn.BatchNorm2d(4)), "torch.float64"),
        "lazy": (nn.Sequential(nn.LazyConv2d(4, 1), nn.BatchNorm2d(4)), "lazy"),
    }
    for name, (model, expected) in cases.items():
        folded, report = fold_batch_norm(model, return_report=True)
        assert report.folded == [] and len(report.skipped) == 1, name
        assert expected in report.skipped[0][1], (name, report.skipped)
        assert count_bn(folded) == 1


def test_untraceable_model_falls_back_to_sequential():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
            self.conv, self.bn = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

        def forward(self, x):
            x = self.features(x)
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                x = x * 2
            return self.bn(self.conv(x))

    torch.manual_seed(0)
    model = randomize_bn(Branchy())
    folded, report = fold_batch_norm(model, return_report=True)
    assert not report.traced and "torch.fx could not trace Branchy" in report.warnings[0]
    assert report.folded == [("features.0", "features.1")]
    assert report.skipped[0][0] == "bn" and "could not be traced" in report.skipped[0][1]
    check_same_function(model, folded, torch.randn(2, 3, 8, 8))


# --- errors ----------------------------------------------------------------------------------


def test_errors():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        fold_batch_norm(lambda x: x)
    with pytest.raises(TypeError, match="return_report must be a bool"):
        fold_batch_norm(nn.Linear(2, 2), return_report=1)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    model[1].running_var[2] = float("nan")
    with pytest.raises(ValueError, match=r"BatchNorm '1' has 1 non-finite entries in running_var"):
        fold_batch_norm(model)
    model[1].running_var[2] = -0.5
    with pytest.raises(ValueError, match="negative entries in running_var"):
        fold_batch_norm(model)
    model[1].running_var.fill_(1)
    model[1].weight.data[0] = float("inf")
    with pytest.raises(ValueError, match="non-finite entries in weight"):
        fold_batch_norm(model)
    model[1].weight.data[0] = 1.0
    model.lock = threading.Lock()
    with pytest.raises(ValueError, match="cannot be copied"):
        fold_batch_norm(model)


def test_no_batch_norm_is_a_warning_not_an_error():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU()).train()
    folded, report = fold_batch_norm(model, return_report=True)
    assert isinstance(report, FoldReport) and report.folded == [] and report.skipped == []
    assert "no BatchNorm" in report.warnings[0]
    assert folded is not model and not folded.training and model.training
    x = torch.randn(2, 3)
    torch.testing.assert_close(folded(x), model(x), rtol=0, atol=0)
