"""Tests for bnbook.manual: NumPy batch/layer norm against PyTorch and against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bnbook.manual import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    numerical_gradient,
    rel_error,
)

BACKWARDS = {"batchnorm": [batchnorm_backward, batchnorm_backward_alt], "layernorm": [layernorm_backward]}
FORWARDS = {"batchnorm": batchnorm_forward, "layernorm": layernorm_forward}
SHAPES = [(2, 1), (4, 5), (16, 3), (7, 12)]
# Non-degenerate cases for gradient checks: batch norm needs N > 1, layer norm needs D > 1
# (a single example is fine for layer norm; that is its point).
GRAD_CASES = [("batchnorm", s) for s in SHAPES] + [("layernorm", s) for s in [(1, 2), (4, 5), (16, 3), (7, 12)]]


def make(N: int, D: int, seed: int = 0):
    """Badly scaled, shifted inputs (so normalization does something) and a random upstream grad."""
    rng = np.random.default_rng(seed)
    x = 5.0 * rng.standard_normal((N, D)) + 12.0
    gamma = rng.standard_normal(D)
    beta = rng.standard_normal(D)
    dout = rng.standard_normal((N, D))
    return x, gamma, beta, dout


def torch_reference(kind: str, x, gamma, beta, dout, eps: float = 1e-5):
    """Forward output and (dx, dgamma, dbeta) from PyTorch autograd in float64."""
    xt, gt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, gamma, beta))
    if kind == "batchnorm":
        out = F.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    else:
        out = F.layer_norm(xt, (x.shape[1],), gt, bt, eps=eps)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), (xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy())


def numeric_grads(forward, x, gamma, beta, dout):
    return (
        numerical_gradient(lambda v: forward(v, gamma, beta)[0], x, dout),
        numerical_gradient(lambda g: forward(x, g, beta)[0], gamma, dout),
        numerical_gradient(lambda b: forward(x, gamma, b)[0], beta, dout),
    )


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("kind", ["batchnorm", "layernorm"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("eps", [1e-5, 1e-1])
def test_forward_matches_torch(kind, shape, eps):
    x, gamma, beta, dout = make(*shape)
    out, cache = FORWARDS[kind](x, gamma, beta, eps=eps)
    ref, _ = torch_reference(kind, x, gamma, beta, dout, eps=eps)
    assert out.shape == x.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    assert cache["kind"] == kind


def test_batchnorm_forward_statistics():
    x, _, _, _ = make(64, 6)
    out, cache = batchnorm_forward(x, np.ones(6), np.zeros(6))
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), np.sqrt(cache["var"] / (cache["var"] + 1e-5)), rtol=1e-12)
    # gamma and beta become the new std and mean of each column (up to eps)
    gamma, beta = np.array([2.0, 3, 4, 5, 6, 7]), np.arange(6.0)
    out, _ = batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=0), gamma, rtol=1e-5)


def test_layernorm_rows_are_independent():
    x, gamma, beta, _ = make(8, 10)
    out_all, _ = layernorm_forward(x, gamma, beta)
    out_one, _ = layernorm_forward(x[3:4], gamma, beta)
    np.testing.assert_allclose(out_all[3:4], out_one, rtol=1e-14)
    # ...whereas batch norm mixes examples: the same row changes with its batch-mates
    bn_all, _ = batchnorm_forward(x, gamma, beta)
    bn_half, _ = batchnorm_forward(x[:4], gamma, beta)
    assert rel_error(bn_all[3], bn_half[3]) > 1e-3


def test_float32_input_stays_float32():
    x, gamma, beta, dout = (a.astype(np.float32) for a in make(8, 3))
    out, cache = batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    assert out.dtype == dx.dtype == dgamma.dtype == dbeta.dtype == np.float32


# --------------------------------------------------------------------------- backward
@pytest.mark.parametrize("kind, shape", GRAD_CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_backward_matches_autograd(kind, shape, seed):
    x, gamma, beta, dout = make(*shape, seed=seed)
    _, cache = FORWARDS[kind](x, gamma, beta)
    _, ref = torch_reference(kind, x, gamma, beta, dout)
    for backward in BACKWARDS[kind]:
        grads = backward(dout, cache)
        for name, g, r in zip(("dx", "dgamma", "dbeta"), grads, ref):
            assert g.shape == r.shape, (backward.__name__, name)
            assert rel_error(g, r) < 1e-7, (backward.__name__, name, rel_error(g, r))


@pytest.mark.parametrize("kind", ["batchnorm", "layernorm"])
@pytest.mark.parametrize("shape", [(4, 5), (10, 3)])
def test_backward_matches_numerical_gradient(kind, shape):
    x, gamma, beta, dout = make(*shape, seed=3)
    _, cache = FORWARDS[kind](x, gamma, beta)
    numeric = numeric_grads(FORWARDS[kind], x, gamma, beta, dout)
    for backward in BACKWARDS[kind]:
        for name, g, n in zip(("dx", "dgamma", "dbeta"), backward(dout, cache), numeric):
            assert rel_error(g, n) < 1e-7, (backward.__name__, name, rel_error(g, n))


def test_graph_walk_and_closed_form_agree_to_rounding():
    x, gamma, beta, dout = make(32, 9, seed=5)
    _, cache = batchnorm_forward(x, gamma, beta)
    for a, b in zip(batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, cache)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_batchnorm_dx_sums_to_zero_per_feature():
    # out does not change when a constant is added to a column, so dx is orthogonal to 1 ...
    x, gamma, beta, dout = make(12, 4, seed=2)
    _, cache = batchnorm_forward(x, gamma, beta)
    dx, _, _ = batchnorm_backward(dout, cache)
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-12)
    # ... and (with eps -> 0) orthogonal to xhat, since scaling a column changes nothing either
    _, cache = batchnorm_forward(x, gamma, beta, eps=1e-14)
    dx, _, _ = batchnorm_backward(dout, cache)
    np.testing.assert_allclose((dx * cache["xhat"]).sum(axis=0), 0.0, atol=1e-10)


# --------------------------------------------------------------------------- why N = 1 proves nothing
def backward_zero(dout, cache):
    """A 'backward' that ignores x entirely: dx = 0, dgamma = 0."""
    return np.zeros_like(dout), np.zeros_like(cache["gamma"]), dout.sum(axis=0)


def backward_missing_variance_term(dout, cache):
    """Forgets that sigma depends on x: only the centering term survives."""
    dx = cache["gamma"] * cache["istd"] * (dout - dout.mean(axis=0))
    return dx, (dout * cache["xhat"]).sum(axis=0), dout.sum(axis=0)


def backward_missing_mean_term(dout, cache):
    """Forgets that mu depends on x (the classic mistake): no '- mean(dout)'."""
    xhat, gamma, istd = cache["xhat"], cache["gamma"], cache["istd"]
    dx = gamma * istd * (dout - xhat * (dout * xhat).mean(axis=0))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def check_against_numerical(backward, N: int, D: int = 4) -> float:
    """Largest rel. error of (dx, dgamma, dbeta) from ``backward`` versus finite differences."""
    x, gamma, beta, dout = make(N, D, seed=7)
    _, cache = batchnorm_forward(x, gamma, beta)
    numeric = numeric_grads(batchnorm_forward, x, gamma, beta, dout)
    return max(rel_error(g, n) for g, n in zip(backward(dout, cache), numeric))


def test_batch_of_one_is_degenerate():
    x, gamma, beta, dout = make(1, 6)
    out, cache = batchnorm_forward(x, gamma, beta)
    np.testing.assert_array_equal(cache["xhat"], 0.0)
    np.testing.assert_allclose(out, beta[None, :])  # output = beta, whatever x is
    out2, _ = batchnorm_forward(x + 100.0 * np.random.default_rng(1).standard_normal(x.shape), gamma, beta)
    np.testing.assert_array_equal(out, out2)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    np.testing.assert_array_equal(dx, 0.0)
    np.testing.assert_array_equal(dgamma, 0.0)
    np.testing.assert_array_equal(dbeta, dout[0])
    # PyTorch refuses to do this in training mode at all
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(torch.tensor(x), None, None, training=True)


def test_layernorm_with_one_feature_is_degenerate():
    x, gamma, beta, dout = make(5, 1)
    out, cache = layernorm_forward(x, gamma, beta)
    np.testing.assert_allclose(out, np.broadcast_to(beta, x.shape))
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    np.testing.assert_array_equal(dx, 0.0)
    np.testing.assert_array_equal(dgamma, 0.0)
    np.testing.assert_allclose(dbeta, dout.sum(axis=0))


@pytest.mark.parametrize("wrong", [backward_zero, backward_missing_variance_term])
def test_wrong_backward_passes_a_check_with_N_1_but_not_with_N_8(wrong):
    """A gradient check on a single example cannot tell these wrong backwards from the right one."""
    assert check_against_numerical(batchnorm_backward, N=1) < 1e-7
    assert check_against_numerical(wrong, N=1) < 1e-7  # passes: every true gradient but dbeta is 0
    assert check_against_numerical(batchnorm_backward, N=8) < 1e-7
    assert check_against_numerical(wrong, N=8) > 1e-2  # caught as soon as N > 1


def test_mutation_missing_mean_term_is_caught():
    assert check_against_numerical(backward_missing_mean_term, N=8) > 1e-2
    # and against autograd, through the same assertion the real test uses
    x, gamma, beta, dout = make(8, 4)
    _, cache = batchnorm_forward(x, gamma, beta)
    _, (dx_ref, _, _) = torch_reference("batchnorm", x, gamma, beta, dout)
    assert rel_error(backward_missing_mean_term(dout, cache)[0], dx_ref) > 1e-2
    assert rel_error(batchnorm_backward(dout, cache)[0], dx_ref) < 1e-7


def test_mutation_layernorm_with_batch_axis_is_caught():
    """Summing over the wrong axis (batch instead of features) is a plausible layer-norm bug."""
    x, gamma, beta, dout = make(6, 5)
    _, cache = layernorm_forward(x, gamma, beta)
    _, (dx_ref, _, _) = torch_reference("layernorm", x, gamma, beta, dout)
    g = dout * gamma
    xhat, istd = cache["xhat"], cache["istd"]
    wrong = istd * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))
    assert rel_error(wrong, dx_ref) > 1e-2
    assert rel_error(layernorm_backward(dout, cache)[0], dx_ref) < 1e-7


# --------------------------------------------------------------------------- helpers
def test_numerical_gradient_simple_and_restores_x():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    x0 = x.copy()
    df = np.array([1.0, 2.0])
    f = lambda v: np.array([np.sum(v**2), np.prod(v)])  # noqa: E731
    g = numerical_gradient(f, x, df)
    expected = 2 * x0 * 1.0 + 2.0 * np.prod(x0) / x0
    np.testing.assert_allclose(g, expected, rtol=1e-8)
    np.testing.assert_array_equal(x, x0)  # perturbed in place, restored exactly


def test_numerical_gradient_copies_outputs_of_f():
    buf = np.zeros(2)

    def f(v):  # returns the same buffer every call
        buf[:] = 3.0 * v
        return buf

    np.testing.assert_allclose(numerical_gradient(f, np.array([1.0, 2.0]), np.ones(2)), [3.0, 3.0])


def test_rel_error():
    assert rel_error(np.ones(3), np.ones(3)) == 0.0
    assert rel_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 4.2)
    assert rel_error(np.zeros(2), np.full(2, 1e-12)) <= 1e-4  # floor: tiny vs 0 is not "100 % wrong"
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.ones(2), np.ones(3))


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors():
    x, gamma, beta, dout = make(4, 3)
    with pytest.raises(TypeError, match="x must be a NumPy float array.*numpy"):
        batchnorm_forward(torch.tensor(x), gamma, beta)
    with pytest.raises(TypeError, match="x must be a NumPy float array"):
        batchnorm_forward(x.tolist(), gamma, beta)
    with pytest.raises(TypeError, match="floating dtype"):
        batchnorm_forward(x.astype(int), gamma, beta)
    with pytest.raises(ValueError, match=r"x must be 2-D"):
        batchnorm_forward(x[None], gamma, beta)
    with pytest.raises(ValueError, match="N >= 1"):
        layernorm_forward(np.zeros((0, 3)), gamma, beta)
    with pytest.raises(ValueError, match=r"gamma must have shape \(D,\) = \(3,\)"):
        batchnorm_forward(x, gamma[:2], beta)
    with pytest.raises(ValueError, match=r"beta must have shape"):
        layernorm_forward(x, gamma, beta[None])
    with pytest.raises(ValueError, match="eps"):
        batchnorm_forward(x, gamma, beta, eps=0.0)
    with pytest.raises(TypeError, match="eps"):
        batchnorm_forward(x, gamma, beta, eps="1e-5")


def test_bad_backward_inputs_raise_clear_errors():
    x, gamma, beta, dout = make(4, 3)
    _, bn_cache = batchnorm_forward(x, gamma, beta)
    _, ln_cache = layernorm_forward(x, gamma, beta)
    with pytest.raises(ValueError, match="cache comes from layernorm_forward"):
        batchnorm_backward(dout, ln_cache)
    with pytest.raises(ValueError, match="cache comes from batchnorm_forward"):
        layernorm_backward(dout, bn_cache)
    with pytest.raises(TypeError, match="cache must be the dict"):
        batchnorm_backward_alt(dout, (1, 2, 3))
    with pytest.raises(ValueError, match=r"dout must have the shape .*\(4, 3\)"):
        batchnorm_backward(dout[:2], bn_cache)
    with pytest.raises(TypeError, match="dout must have a floating dtype"):
        layernorm_backward(dout.astype(np.int64), ln_cache)


def test_numerical_gradient_bad_inputs():
    f = lambda v: 2 * v  # noqa: E731
    with pytest.raises(TypeError, match="floating dtype"):
        numerical_gradient(f, np.array([1, 2]), np.ones(2))
    with pytest.raises(ValueError, match="h must be"):
        numerical_gradient(f, np.ones(2), np.ones(2), h=0.0)
    with pytest.raises(ValueError, match="h must be"):
        numerical_gradient(f, np.ones(2), np.ones(2), h=float("nan"))
    with pytest.raises(ValueError, match=r"df must have the shape of f\(x\)"):
        numerical_gradient(f, np.ones(2), np.ones(3))
