"""bnbook.landscape: loss and gradient along the gradient direction (Santurkar et al. 2018, Fig. 4)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from bnbook.landscape import gradient_landscape


def test_gradient_landscape_matches_direct_computation():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Sigmoid(), nn.Linear(7, 3)).double()
    X, y = torch.randn(20, 5, dtype=torch.float64), torch.randint(0, 3, (20,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    out = gradient_landscape(net, X, y, [0.1, 1.0])
    assert not net.training  # the flag is restored
    for k, v in net.state_dict().items():  # parameters and running statistics untouched
        assert torch.equal(v, before[k]), k
    # oracle: the same computation written out with copies of the network
    ref = copy.deepcopy(net).train()
    loss = nn.functional.cross_entropy(ref(X), y)
    g = torch.autograd.grad(loss, list(ref.parameters()))
    g_flat = torch.cat([t.reshape(-1) for t in g])
    assert math.isclose(out["loss0"], loss.item(), rel_tol=1e-12)
    assert math.isclose(out["grad_norm"], float(g_flat.norm()), rel_tol=1e-12)
    for k, eta in enumerate([0.1, 1.0]):
        moved = copy.deepcopy(ref)
        with torch.no_grad():
            for p, gp in zip(moved.parameters(), g):
                p -= eta * gp
        loss2 = nn.functional.cross_entropy(moved(X), y)
        g2 = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss2, list(moved.parameters()))])
        change = float((g2 - g_flat).norm())
        assert math.isclose(out["loss"][k], loss2.item(), rel_tol=1e-12)
        assert math.isclose(out["grad_change"][k], change, rel_tol=1e-9)
        assert math.isclose(out["beta"][k], change / (eta * float(g_flat.norm())), rel_tol=1e-9)
    assert out["loss"][1] != out["loss"][0]


def test_gradient_landscape_bad_arguments():
    net = nn.Linear(3, 2)
    X, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="etas"):
        gradient_landscape(net, X, y, [])
    with pytest.raises(ValueError, match="etas"):
        gradient_landscape(net, X, y, [0.1, -1.0])
    with pytest.raises(ValueError, match="same N"):
        gradient_landscape(net, X, y[:3], [0.1])
    with pytest.raises(TypeError, match="torch.Tensors"):
        gradient_landscape(net, X.numpy(), y, [0.1])
    with pytest.raises(TypeError, match="net"):
        gradient_landscape(None, X, y, [0.1])
    frozen = nn.Linear(3, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="trainable"):
        gradient_landscape(frozen, X, y, [0.1])


def test_gradient_landscape_at_a_minimum_has_zero_gradient():
    net = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.zero_()
    X = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([0, 1])  # symmetric: the zero network is a stationary point
    out = gradient_landscape(net, X, y, [1.0])
    assert out["grad_norm"] == 0.0 and np.isnan(out["beta"]).all()
    assert out["loss"][0] == pytest.approx(math.log(2))
