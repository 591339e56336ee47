"""Tests for bnbook.layers.registry: make_norm builds the right class, same outputs in both impls."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from bnbook import layers as L
from bnbook.layers.registry import default_num_groups

C = 6
INPUT_SHAPES = {0: (5, C), 1: (4, C, 7), 2: (3, C, 5, 4), 3: (2, C, 3, 4, 3)}  # (N, C, *spatial)

# (kind, spatial_dims) -> (class name, attributes the built layer must have)
EXPECTED = {
    ("batch", 0): ("BatchNorm1d", {"num_features": C}),
    ("batch", 1): ("BatchNorm1d", {"num_features": C}),
    ("batch", 2): ("BatchNorm2d", {"num_features": C}),
    ("batch", 3): ("BatchNorm3d", {"num_features": C}),
    ("layer", 0): ("LayerNorm", {"normalized_shape": (C,)}),
    **{("layer", d): ("GroupNorm", {"num_groups": 1, "num_channels": C}) for d in (1, 2, 3)},
    **{("instance", d): (f"InstanceNorm{d}d", {"num_features": C}) for d in (1, 2, 3)},
    **{("group", d): ("GroupNorm", {"num_groups": 2, "num_channels": C}) for d in (0, 1, 2, 3)},
    ("rms", 0): ("RMSNorm", {"normalized_shape": (C,)}),
}
VALID = sorted(EXPECTED)
INVALID = [(kind, d) for kind in L.NORM_KINDS for d in INPUT_SHAPES if (kind, d) not in EXPECTED]
IMPLS = {"bnbook": L, "torch": nn}


def test_every_kind_and_spatial_dims_is_in_the_table():
    assert {k for k, _ in EXPECTED} | {k for k, _ in INVALID} == set(L.NORM_KINDS)
    assert INVALID == [("instance", 0), ("rms", 1), ("rms", 2), ("rms", 3)]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind,spatial_dims", VALID)
def test_make_norm_builds_the_right_class(kind, spatial_dims, impl):
    layer = L.make_norm(kind, C, spatial_dims=spatial_dims, impl=impl)
    name, attrs = EXPECTED[kind, spatial_dims]
    assert type(layer) is getattr(IMPLS[impl], name)
    for attr, value in attrs.items():
        assert getattr(layer, attr) == value, attr
    assert layer(torch.randn(INPUT_SHAPES[spatial_dims])).shape == INPUT_SHAPES[spatial_dims]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "kind,spatial_dims,kwargs",
    [
        ("batch", 2, {"eps": 1e-3, "momentum": 0.5, "affine": False}),
        ("batch", 0, {"track_running_stats": False, "bias": False}),
        ("instance", 1, {"affine": True, "track_running_stats": True}),
        ("layer", 0, {"eps": 1e-4, "elementwise_affine": False}),
        ("layer", 2, {"eps": 1e-4, "affine": False}),
        ("group", 3, {"eps": 1e-2, "affine": False}),
        ("group", 0, {"dtype": torch.float64}),
        ("rms", 0, {"eps": 1e-3, "elementwise_affine": False}),
    ],
)
def test_kwargs_pass_through(kind, spatial_dims, kwargs, impl):
    layer = L.make_norm(kind, C, spatial_dims=spatial_dims, impl=impl, **kwargs)
    name, _ = EXPECTED[kind, spatial_dims]
    assert repr(layer) == repr(getattr(nn, name)(*_positional(kind, spatial_dims), **kwargs))


def _positional(kind, spatial_dims):
    if kind == "group":
        return (2, C)
    if kind == "layer" and spatial_dims > 0:
        return (1, C)
    return (C,)


def test_explicit_num_groups():
    layer = L.make_norm("group", 12, spatial_dims=2, num_groups=3)
    assert (layer.num_groups, layer.num_channels) == (3, 12)


@pytest.mark.parametrize("kind,spatial_dims", VALID)
def test_bnbook_and_torch_versions_give_equal_outputs(kind, spatial_dims):
    g = torch.Generator().manual_seed(0)
    kwargs = {"affine": True} if kind == "instance" else {}  # give instance norm parameters too
    ours = L.make_norm(kind, C, spatial_dims=spatial_dims, **kwargs)
    theirs = L.make_norm(kind, C, spatial_dims=spatial_dims, impl="torch", **kwargs)
    with torch.no_grad():  # non-trivial parameters, copied from torch's layer
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    ours.load_state_dict(theirs.state_dict())
    for training in (True, False, True):
        ours.train(training)
        theirs.train(training)
        x = torch.randn(INPUT_SHAPES[spatial_dims], generator=g) * 3 + 1
        assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)
        assert_close(ours.state_dict(), theirs.state_dict())


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_layer_after_a_convolution_is_layer_norm_over_channels_and_positions(spatial_dims):
    """GroupNorm(1, C) = LayerNorm((C, *spatial)) with unit affine: what the docstring claims."""
    x = torch.randn(INPUT_SHAPES[spatial_dims]) * 2 + 5
    y = L.make_norm("layer", C, spatial_dims=spatial_dims)(x)
    assert_close(y, nn.functional.layer_norm(x, x.shape[1:]), rtol=1e-4, atol=1e-5)


def test_norm_prefix():
    assert [L.norm_prefix(k) for k in L.NORM_KINDS] == ["bn", "ln", "in", "gn", "rms"]
    with pytest.raises(ValueError, match=r"unknown kind 'weight'.*'batch'"):
        L.norm_prefix("weight")


@pytest.mark.parametrize("channels", [*range(1, 70), 84, 96, 100, 120, 256, 1000])
def test_default_num_groups(channels):
    g = default_num_groups(channels)
    assert channels % g == 0 and g <= 32
    assert g < channels or channels == 1  # never one channel per group
    if channels % 64 == 0:
        assert g == 32  # Wu & He's G = 32 where C allows it
    assert g == (math.gcd(channels, 32) if math.gcd(channels, 32) < channels else max(channels // 2, 1))


def test_default_num_groups_runs_after_a_linear_layer():
    for channels in (2, 4, 16, 32, 64):  # powers of two: gcd(C, 32) alone would be C
        L.make_norm("group", channels)(torch.randn(3, channels))  # raises if a group is 1 value


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: L.make_norm("weight", 4), ValueError, r"unknown kind 'weight'; expected one of \['batch', 'group'"),
        (lambda: L.make_norm("batch", 4, impl="jax"), ValueError, r"unknown impl 'jax'.*'bnbook', 'torch'"),
        (lambda: L.make_norm("batch", 4, spatial_dims=4), ValueError, r"unknown spatial_dims 4.*\[0, 1, 2, 3\]"),
        (lambda: L.make_norm("batch", 4, spatial_dims=-1), ValueError, "spatial_dims must be >= 0"),
        (lambda: L.make_norm("batch", 4, spatial_dims=1.0), TypeError, "spatial_dims must be an int"),
        (lambda: L.make_norm("batch", 4, spatial_dims=True), TypeError, "spatial_dims"),
        (lambda: L.make_norm("batch", 0), ValueError, "num_features must be >= 1"),
        (lambda: L.make_norm("instance", 4), ValueError, r"kind='instance' needs a spatial axis"),
        (lambda: L.make_norm("rms", 4, spatial_dims=2), ValueError, r"kind='rms'.*use it on \(N, \.\.\., C\) features"),
        (lambda: L.make_norm("rms", 4, num_groups=2), ValueError, "num_groups is only used by kind='group'"),
        (lambda: L.make_norm("group", 6, num_groups=4), ValueError, r"num_groups=4 does not divide num_features=6"),
        (lambda: L.make_norm("group", 6, num_groups=0), ValueError, "num_groups must be >= 1"),
        (lambda: L.make_norm("layer", 6, num_groups=2), ValueError, r"num_groups is only used by kind='group'"),
        (lambda: L.make_norm("layer", 6, spatial_dims=2, elementwise_affine=False), TypeError, "elementwise_affine"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_group_error_lists_the_divisors():
    with pytest.raises(ValueError, match=r"choose one of \[1, 2, 3, 6\]"):
        L.make_norm("group", 6, num_groups=4, impl="torch")
