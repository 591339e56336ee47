"""Tests for bnbook.models: shapes, parameter counts, layer names, norm/impl switches."""

import pytest
import torch
from torch import nn

from bnbook import layers, models


def num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def norm_layers(net: nn.Module) -> list[nn.Module]:
    kinds = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    return [m for m in net.modules() if isinstance(m, kinds) or "Norm" in type(m).__name__]


# Hand-counted: conv1 6*1*25+6, conv2 16*6*25+16, fc1 256*120+120, fc2 120*84+84, fc3 84*10+10.
LENET_28 = 156 + 2416 + 30840 + 10164 + 850
BN_LENET = 2 * (6 + 16 + 120 + 84)  # weight + bias per channel


@pytest.mark.parametrize("norm", [None, "batch"])
def test_lenet_shapes_28x28_gray(norm):
    net = models.lenet(norm, impl="torch")
    X = torch.randn(4, 1, 28, 28)
    assert net(X).shape == (4, 10)
    assert num_params(net) == LENET_28 + (BN_LENET if norm else 0)


@pytest.mark.parametrize("norm", [None, "batch"])
def test_lenet_shapes_32x32_color(norm):
    net = models.lenet(norm, impl="torch", in_channels=3, image_size=32, num_classes=7)
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, 7)
    # conv1 has 3 input channels; fc1 sees 16 x 5 x 5 = 400 features; fc3 has 7 outputs.
    expected = 456 + 2416 + (400 * 120 + 120) + 10164 + (84 * 7 + 7)
    assert num_params(net) == expected + (BN_LENET if norm else 0)


def test_lenet_rectangular_image():
    net = models.lenet(None, impl="torch", image_size=(28, 36))
    assert net(torch.randn(2, 1, 28, 36)).shape == (2, 10)
    assert net.fc1.in_features == 16 * 4 * 6


def test_lenet_layer_names():
    net = models.lenet("batch", impl="torch")
    names = [n for n, _ in net.named_children()]
    assert names == [
        "conv1",
        "bn1",
        "act1",
        "pool1",
        "conv2",
        "bn2",
        "act2",
        "pool2",
        "flatten",
        "fc1",
        "bn3",
        "act3",
        "fc2",
        "bn4",
        "act4",
        "fc3",
    ]
    plain = [n for n, _ in models.lenet(None, impl="torch").named_children()]
    assert plain == [n for n in names if not n.startswith("bn")]


def test_norm_none_has_no_norm_layers():
    for net in (models.lenet(None), models.cifar_mlp(None), models.ioffe_mlp(None)):
        assert norm_layers(net) == []


def test_torch_impl_uses_torch_classes():
    net = models.lenet("batch", impl="torch")
    assert type(net.bn1) is nn.BatchNorm2d and type(net.bn3) is nn.BatchNorm1d
    assert net.bn1.num_features == 6 and net.bn4.num_features == 84


def test_bnbook_impl_uses_bnbook_layers():
    net = models.lenet("batch", impl="bnbook")
    assert type(net.bn1) is layers.BatchNorm2d and type(net.bn3) is layers.BatchNorm1d
    assert num_params(net) == LENET_28 + BN_LENET
    # drop-in: the two implementations share a state_dict layout and give the same output
    ref = models.lenet("batch", impl="torch")
    ref.load_state_dict(net.state_dict())
    X = torch.randn(8, 1, 28, 28)
    torch.testing.assert_close(net(X), ref(X), rtol=1e-4, atol=1e-5)


def test_bnbook_impl_mlps():
    assert type(models.cifar_mlp(impl="bnbook").bn1) is layers.BatchNorm1d
    assert type(models.ioffe_mlp("batch", impl="bnbook").bn3) is layers.BatchNorm1d


def test_callable_factory():
    calls = []

    def factory(num_features, spatial):
        calls.append((num_features, spatial))
        return nn.GroupNorm(2, num_features) if spatial else nn.LayerNorm(num_features)

    net = models.lenet(factory, impl="torch")
    assert calls == [(6, True), (16, True), (120, False), (84, False)]
    assert isinstance(net.norm1, nn.GroupNorm) and isinstance(net.norm4, nn.LayerNorm)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_factory_must_return_module():
    with pytest.raises(TypeError, match="nn.Module"):
        models.lenet(lambda c, spatial: "not a layer")


def test_cifar_mlp():
    net = models.cifar_mlp("batch", impl="torch")
    assert net(torch.randn(5, 3, 32, 32)).shape == (5, 10)
    expected = (3072 * 64 + 64) + (64 * 32 + 32) + (32 * 10 + 10)
    assert num_params(net) == expected + 2 * (64 + 32)
    assert [type(m) for m in (net.bn1, net.act1, net.bn2, net.act2)] == [
        nn.BatchNorm1d,
        nn.ReLU,
        nn.BatchNorm1d,
        nn.ReLU,
    ]


def test_ioffe_mlp():
    net = models.ioffe_mlp()  # the paper's baseline: no BN
    assert net(torch.randn(6, 1, 28, 28)).shape == (6, 10)
    assert num_params(net) == (784 * 100 + 100) + 2 * (100 * 100 + 100) + (100 * 10 + 10)
    assert [n for n, _ in net.named_children()] == ["flatten", "fc1", "act1", "fc2", "act2", "fc3", "act3", "fc4"]
    bn = models.ioffe_mlp("batch", impl="torch", depth=2, hidden=50)
    assert [n for n, _ in bn.named_children()] == ["flatten", "fc1", "bn1", "act1", "fc2", "bn2", "act2", "fc3"]
    assert all(isinstance(m, nn.Sigmoid) for m in (bn.act1, bn.act2))


@pytest.mark.parametrize("builder", [models.lenet, models.cifar_mlp, models.ioffe_mlp])
def test_bad_norm_and_impl(builder):
    with pytest.raises(ValueError, match=r"unknown norm 'bogus'.*'batch'"):
        builder("bogus")
    with pytest.raises(ValueError, match=r"unknown impl 'jax'.*'bnbook', 'torch'"):
        builder("batch", impl="jax")
    with pytest.raises(ValueError, match="num_classes"):
        builder(None, num_classes=0)


def test_lenet_image_too_small():
    with pytest.raises(ValueError, match="too small for LeNet"):
        models.lenet(image_size=8)
    with pytest.raises(ValueError, match="too small"):
        models.lenet(image_size=(28, 15))
    models.lenet(None, impl="torch", image_size=16)  # the smallest size that fits
    with pytest.raises(ValueError, match="pair"):
        models.lenet(image_size=(28, 28, 3))
    with pytest.raises(TypeError, match="in_channels"):
        models.lenet(in_channels=1.5)


def test_mlp_argument_checks():
    with pytest.raises(ValueError, match="depth"):
        models.ioffe_mlp(depth=0)
    with pytest.raises(ValueError, match="hidden"):
        models.ioffe_mlp(hidden=0)
    with pytest.raises(ValueError, match="in_features"):
        models.cifar_mlp(in_features=0)


# --------------------------------------------------------------------------------------------
# Every kind of the registry
# --------------------------------------------------------------------------------------------

BUILDERS = {
    "lenet": (models.lenet, (2, 1, 28, 28), [6, 16, 120, 84]),
    "cifar_mlp": (models.cifar_mlp, (3, 3, 32, 32), [64, 32]),
    "ioffe_mlp": (lambda norm, **kw: models.ioffe_mlp(norm, depth=3, **kw), (4, 1, 28, 28), [100, 100, 100]),
}
# Kinds without a form for one of the model's layers: instance norm after a linear layer, RMS
# norm after a convolution.
REFUSED = {
    ("lenet", "instance"): "fc1",
    ("cifar_mlp", "instance"): "fc1",
    ("ioffe_mlp", "instance"): "fc1",
    ("lenet", "rms"): "conv1",
}
BUILDS = [(b, k) for b in BUILDERS for k in models.NORMS if (b, k) not in REFUSED]


def test_norms_are_the_registry_kinds():
    assert models.NORMS == layers.NORM_KINDS == ("batch", "layer", "instance", "group", "rms")


@pytest.mark.parametrize("impl", models.IMPLS)
@pytest.mark.parametrize("builder,kind", BUILDS)
def test_every_kind_builds_and_runs(builder, kind, impl):
    build, input_shape, widths = BUILDERS[builder]
    net = build(kind, impl=impl)
    prefix = layers.norm_prefix(kind)
    norms = [(n, m) for n, m in net.named_children() if n.startswith(prefix) and n[len(prefix) :].isdigit()]
    assert [n for n, _ in norms] == [f"{prefix}{i}" for i in range(1, len(widths) + 1)]
    lib = nn if impl == "torch" else layers
    for (name, layer), width in zip(norms, widths):
        spatial = builder == "lenet" and width in (6, 16)
        expected = layers.make_norm(kind, width, spatial_dims=2 if spatial else 0, impl=impl)
        assert type(layer) is type(expected) and repr(layer) == repr(expected), name
        assert type(layer).__module__.startswith(lib.__name__), name
    net.train()
    y = net(torch.randn(input_shape))
    assert y.shape == (input_shape[0], 10) and torch.isfinite(y).all()
    # names other than the norm layers do not depend on the kind
    plain = [n for n, _ in build(None, impl=impl).named_children()]
    norm_names = {n for n, _ in norms}
    assert [n for n, _ in net.named_children() if n not in norm_names] == plain


@pytest.mark.parametrize("builder,kind", BUILDS)
def test_every_kind_gives_the_same_network_in_both_impls(builder, kind):
    build, input_shape, _ = BUILDERS[builder]
    torch.manual_seed(0)
    ours = build(kind, impl="bnbook")
    theirs = build(kind, impl="torch")
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(input_shape)
    for training in (True, False):
        ours.train(training)
        theirs.train(training)
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("builder,kind", sorted(REFUSED))
def test_kind_without_a_form_for_a_layer_raises_naming_it(builder, kind):
    build, _, _ = BUILDERS[builder]
    with pytest.raises(ValueError, match=rf"norm={kind!r} cannot follow {REFUSED[builder, kind]} "):
        build(kind)


def test_rms_mlp_layers():
    net = models.cifar_mlp("rms")
    assert [type(m) for m in (net.rms1, net.rms2)] == [layers.RMSNorm, layers.RMSNorm]
    assert net.rms1.normalized_shape == (64,) and net.rms2.normalized_shape == (32,)
    with pytest.raises(ValueError, match=r"norm='rms' cannot follow conv1 \(its output is \(N, 6, H, W\)\)"):
        models.lenet("rms")
