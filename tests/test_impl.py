"""Tests for bnbook._impl: the one resolver of ``impl="bnbook" | "torch"``."""

from __future__ import annotations

import pytest
import torch.nn
import torch.nn.functional

from bnbook import _impl, functional, layers


def test_impls():
    assert _impl.IMPLS == ("bnbook", "torch")


def test_layers_module():
    assert _impl.layers_module("bnbook") is layers
    assert _impl.layers_module("torch") is torch.nn


def test_functional_module():
    assert _impl.functional_module("bnbook") is functional
    assert _impl.functional_module("torch") is torch.nn.functional


def test_both_implementations_offer_the_same_names():
    for impl_name in ("bnbook", "torch"):
        for name in layers.__all__:
            if isinstance(getattr(layers, name), type):
                assert hasattr(_impl.layers_module(impl_name), name), (impl_name, name)
        for name in functional.__all__:
            assert callable(getattr(_impl.functional_module(impl_name), name)), (impl_name, name)


@pytest.mark.parametrize("resolve", [_impl.layers_module, _impl.functional_module, _impl.check_impl])
@pytest.mark.parametrize("bad", ["jax", "Torch", "", None, 1])
def test_unknown_impl_lists_the_choices(resolve, bad):
    with pytest.raises(ValueError, match=r"unknown impl .*\['bnbook', 'torch'\]"):
        resolve(bad)
