"""bnbook.state: measuring a network leaves it exactly as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bnbook.state import check_module, num_threads, preserved


class _Noisy(nn.Module):
    """A module with a private generator that takes part in the snapshot."""

    def __init__(self):
        super().__init__()
        self.generator = torch.Generator().manual_seed(0)
        self.last = None

    def rng_snapshot(self):
        return self.generator.get_state(), self.last

    def rng_restore(self, snapshot):
        state, self.last = snapshot
        self.generator.set_state(state)

    def forward(self, x):
        self.last = torch.rand(1, generator=self.generator)
        return x + self.last


def test_preserved_restores_buffers_modes_parameters_and_rng_snapshots():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), _Noisy()).eval()
    buffers = [b.clone() for b in net.buffers()]
    params = [p.detach().clone() for p in net.parameters()]
    expected_noise = torch.rand(1, generator=torch.Generator().manual_seed(0))
    with preserved(net, params=True):
        net.train()
        net(torch.randn(8, 3) * 5)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(buffers, net.buffers()))
    assert all(torch.equal(a, b) for a, b in zip(params, net.parameters()))
    assert not any(m.training for m in net.modules())
    assert torch.equal(net[2](torch.zeros(1)), expected_noise)  # the first draw again


def test_preserved_without_params_keeps_the_parameter_changes():
    net = nn.Linear(2, 2)
    with preserved(net), torch.no_grad():
        net.weight.zero_()
    assert torch.count_nonzero(net.weight) == 0


def test_num_threads_sets_and_restores():
    old = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == old
    with num_threads(None):
        assert torch.get_num_threads() == old
    with pytest.raises(ValueError, match="num_threads"), num_threads(0):
        pass


def test_check_module():
    net = nn.ReLU()
    assert check_module(net) is net
    with pytest.raises(TypeError, match="model must be an nn.Module, got str"):
        check_module("x", "model")
