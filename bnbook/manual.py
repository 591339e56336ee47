"""Batch norm and layer norm by hand: NumPy forward passes and hand-derived backward passes.

Introduced in chapter 2 ("Batch normalization from scratch").  Everything here works on
2-D arrays ``x`` of shape ``(N, D)`` (a mini-batch of ``N`` examples with ``D`` features),
uses only NumPy, and is checked in ``tests/test_manual.py`` against PyTorch
(``torch.nn.functional.batch_norm`` / ``layer_norm`` and autograd) and against
:func:`numerical_gradient`.

The two normalizations differ only in the axis they average over::

    batch norm:  statistics per feature, over the batch      (axis 0, N values each)
    layer norm:  statistics per example, over the features   (axis 1, D values each)

Both use the *biased* variance (divide by ``N`` or ``D``), as PyTorch does when it
normalizes.  Caches are plain dicts, so a reader can look inside them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._validate import check_eps

__all__ = [
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "layernorm_forward",
    "layernorm_backward",
    "numerical_gradient",
    "rel_error",
]

Cache = dict[str, Any]


# --------------------------------------------------------------------------- validation
def _check_float_array(name: str, a, ndim: int | None = None) -> np.ndarray:
    """``a`` must be a floating-point NumPy array (ints would silently truncate ``x + h``)."""
    if not isinstance(a, np.ndarray):
        hint = " (call .detach().numpy() on a torch tensor)" if type(a).__module__.startswith("torch") else ""
        raise TypeError(f"{name} must be a NumPy float array, got {type(a).__name__}{hint}")
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must have a floating dtype (float32/float64), got {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return a


def _check_inputs(x, gamma, beta, eps) -> float:
    _check_float_array("x", x, ndim=2)
    N, D = x.shape
    if N == 0 or D == 0:
        raise ValueError(f"x must have shape (N, D) with N >= 1 and D >= 1, got {x.shape}")
    for name, p in (("gamma", gamma), ("beta", beta)):
        _check_float_array(name, p)
        if p.shape != (D,):
            raise ValueError(f"{name} must have shape (D,) = ({D},) to match x of shape {x.shape}, got {p.shape}")
    return check_eps(eps)


def _check_backward(dout, cache, kind: str) -> None:
    if not isinstance(cache, dict) or cache.get("kind") not in ("batchnorm", "layernorm"):
        raise TypeError(f"cache must be the dict returned by {kind}_forward, got {type(cache).__name__}")
    if cache["kind"] != kind:
        raise ValueError(f"cache comes from {cache['kind']}_forward, but this is {kind}_backward")
    _check_float_array("dout", dout, ndim=2)
    if dout.shape != cache["xhat"].shape:
        raise ValueError(f"dout must have the shape of the forward output {cache['xhat'].shape}, got {dout.shape}")


# --------------------------------------------------------------------------- batch norm
def batchnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, Cache]:
    r"""Training-mode batch norm of a mini-batch ``x`` of shape ``(N, D)``.

    For every feature ``j`` (column), with the batch statistics over the ``N`` rows:

    .. math::

        \mu_j = \frac1N \sum_i x_{ij}, \qquad
        \sigma^2_j = \frac1N \sum_i (x_{ij} - \mu_j)^2, \qquad
        \hat x_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma^2_j + \epsilon}}, \qquad
        y_{ij} = \gamma_j \hat x_{ij} + \beta_j .

    Parameters
    ----------
    x : ndarray, shape (N, D), float
        Mini-batch.  ``N = 1`` is allowed but degenerate: then ``x - mu = 0``, so the output is
        ``beta`` for any ``x`` and every gradient except ``dbeta`` is zero.  (PyTorch refuses
        ``N = 1`` in training mode for exactly this reason.)
    gamma, beta : ndarray, shape (D,), float
        Scale and shift (PyTorch: ``weight`` and ``bias``).
    eps : float, default 1e-5
        Added to the variance before the square root.

    Returns
    -------
    out : ndarray, shape (N, D)
    cache : dict
        Intermediate values for :func:`batchnorm_backward`: ``xhat``, ``xmu`` (x - mu),
        ``var``, ``std`` (sqrt(var + eps)), ``istd`` (1 / std), ``gamma``, ``eps``.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0], [3.0, 6.0]])
    >>> out, cache = batchnorm_forward(x, np.ones(2), np.zeros(2))
    >>> np.round(out, 4)  # each column: mean 0, (biased) std 1
    array([[-1., -1.],
           [ 1.,  1.]])
    """
    eps = _check_inputs(x, gamma, beta, eps)
    mu = x.mean(axis=0)  # (D,)
    xmu = x - mu  # (N, D)
    var = (xmu**2).mean(axis=0)  # (D,) biased: divide by N
    std = np.sqrt(var + eps)  # (D,)
    istd = 1.0 / std  # (D,)
    xhat = xmu * istd  # (N, D)
    out = gamma * xhat + beta  # (N, D)
    cache = {
        "kind": "batchnorm",
        "xhat": xhat,
        "xmu": xmu,
        "var": var,
        "std": std,
        "istd": istd,
        "gamma": gamma,
        "eps": eps,
    }
    return out, cache


def batchnorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Backward pass of :func:`batchnorm_forward`, one node of the computational graph at a time.

    The forward pass is the chain ``x -> mu -> xmu -> var -> std -> istd -> xhat -> out``.
    Walking it backwards, every step applies the local derivative of one node to the
    upstream gradient, and a node used twice (``xmu`` feeds ``xhat`` *and* ``var``; ``x``
    feeds ``xmu`` directly *and* through ``mu``) sums the gradients of its uses.

    Parameters
    ----------
    dout : ndarray, shape (N, D)
        Upstream gradient :math:`\partial L / \partial y`.
    cache : dict
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)
    """
    _check_backward(dout, cache, "batchnorm")
    xhat, xmu, std, istd, gamma = cache["xhat"], cache["xmu"], cache["std"], cache["istd"], cache["gamma"]
    N = dout.shape[0]

    # out = gamma * xhat + beta: beta and gamma are broadcast over the N rows, so sum over them.
    dbeta = dout.sum(axis=0)  # (D,)
    dgamma = (dout * xhat).sum(axis=0)  # (D,)
    dxhat = dout * gamma  # (N, D)

    # xhat = xmu * istd: a product node, each factor gets the other times the upstream gradient.
    dxmu_direct = dxhat * istd  # (N, D)  first use of xmu
    distd = (dxhat * xmu).sum(axis=0)  # (D,)  istd was broadcast over N rows

    # istd = 1 / std  ->  d istd / d std = -1 / std^2
    dstd = -distd / std**2  # (D,)

    # std = sqrt(var + eps)  ->  d std / d var = 1 / (2 std)
    dvar = dstd / (2.0 * std)  # (D,)

    # var = mean(xmu^2, axis=0)  ->  d var / d xmu_ij = 2 xmu_ij / N
    dxmu_var = 2.0 * xmu * dvar / N  # (N, D)  second use of xmu

    dxmu = dxmu_direct + dxmu_var  # (N, D)  sum over both uses of xmu

    # xmu = x - mu: x gets dxmu directly; mu gets -sum(dxmu) (mu was broadcast over N rows).
    dmu = -dxmu.sum(axis=0)  # (D,)

    # mu = mean(x, axis=0)  ->  d mu / d x_ij = 1 / N
    dx = dxmu + dmu / N  # (N, D)  sum over both uses of x
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The same gradients as :func:`batchnorm_backward`, in closed form.

    Simplifying the graph walk on paper (with :math:`\sigma = \sqrt{\sigma^2 + \epsilon}`,
    sums over the batch axis) gives

    .. math::

        \frac{\partial L}{\partial x} = \frac{\gamma}{N \sigma}
            \Big(N\, \delta - \sum_i \delta_i - \hat x \sum_i \delta_i \hat x_i\Big),
        \qquad \delta = \frac{\partial L}{\partial y}.

    Read it as: the upstream gradient, minus its mean (because shifting every ``x`` in a
    column changes nothing after centering), minus its projection on ``xhat`` (because
    scaling a column changes nothing after dividing by its standard deviation).
    It needs only ``xhat``, ``1/sigma`` and ``gamma`` from the cache, and a handful of array
    operations instead of a dozen; ``tests/test_manual.py`` checks that both versions agree.
    """
    _check_backward(dout, cache, "batchnorm")
    xhat, istd, gamma = cache["xhat"], cache["istd"], cache["gamma"]
    N = dout.shape[0]
    dbeta = dout.sum(axis=0)  # (D,)
    dgamma = (dout * xhat).sum(axis=0)  # (D,)
    dx = (gamma * istd / N) * (N * dout - dbeta - xhat * dgamma)  # (N, D)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- layer norm
def layernorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5
) -> tuple[np.ndarray, Cache]:
    r"""Layer norm of ``x`` of shape ``(N, D)``: every row is normalized over its ``D`` features.

    .. math::

        \mu_i = \frac1D \sum_j x_{ij}, \qquad
        \sigma^2_i = \frac1D \sum_j (x_{ij} - \mu_i)^2, \qquad
        y_{ij} = \gamma_j \frac{x_{ij} - \mu_i}{\sqrt{\sigma^2_i + \epsilon}} + \beta_j .

    The statistics are per example, so the result for one row does not depend on the other
    rows, and training and inference compute the same thing (no running averages).
    ``gamma`` and ``beta`` still have one entry per feature, shape ``(D,)``, as in
    ``torch.nn.LayerNorm(D)``.  ``D = 1`` is the degenerate case (output ``beta``).

    Returns
    -------
    out : ndarray, shape (N, D)
    cache : dict
        ``xhat``, ``xmu``, ``var``, ``std``, ``istd`` (per row, shape (N, 1)), ``gamma``, ``eps``.
    """
    eps = _check_inputs(x, gamma, beta, eps)
    mu = x.mean(axis=1, keepdims=True)  # (N, 1)
    xmu = x - mu  # (N, D)
    var = (xmu**2).mean(axis=1, keepdims=True)  # (N, 1)
    std = np.sqrt(var + eps)  # (N, 1)
    istd = 1.0 / std  # (N, 1)
    xhat = xmu * istd  # (N, D)
    out = gamma * xhat + beta  # (N, D)
    cache = {
        "kind": "layernorm",
        "xhat": xhat,
        "xmu": xmu,
        "var": var,
        "std": std,
        "istd": istd,
        "gamma": gamma,
        "eps": eps,
    }
    return out, cache


def layernorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Backward pass of :func:`layernorm_forward`.

    The normalization part is batch norm turned sideways: the closed form of
    :func:`batchnorm_backward_alt` with the sums taken over the features (axis 1, ``D``
    terms) and with :math:`g = \gamma \odot \partial L/\partial y` (because here ``gamma``
    varies along the axis being summed, it cannot be pulled out of the sums):

    .. math::

        \frac{\partial L}{\partial x_{i\cdot}} = \frac{1}{D \sigma_i}
            \Big(D\, g_{i\cdot} - \sum_j g_{ij} - \hat x_{i\cdot} \sum_j g_{ij} \hat x_{ij}\Big).

    ``gamma`` and ``beta`` are shared by all rows, so their gradients sum over the batch axis.

    Returns
    -------
    dx : ndarray, shape (N, D)
    dgamma, dbeta : ndarray, shape (D,)
    """
    _check_backward(dout, cache, "layernorm")
    xhat, istd, gamma = cache["xhat"], cache["istd"], cache["gamma"]
    D = dout.shape[1]
    dbeta = dout.sum(axis=0)  # (D,)
    dgamma = (dout * xhat).sum(axis=0)  # (D,)
    g = dout * gamma  # (N, D)  gradient w.r.t. xhat
    dx = (istd / D) * (D * g - g.sum(axis=1, keepdims=True) - xhat * (g * xhat).sum(axis=1, keepdims=True))  # (N, D)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- checking gradients
def numerical_gradient(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, df: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    r"""Central-difference estimate of :math:`\nabla_x \langle f(x), df\rangle`.

    For a vector-valued ``f`` and an upstream gradient ``df`` (same shape as ``f(x)``), entry
    ``k`` of the result is

    .. math::

        \sum_m df_m \, \frac{f_m(x + h e_k) - f_m(x - h e_k)}{2h},

    which is exactly what a backward pass computes from ``dout = df``.  The error is
    :math:`O(h^2)`; use float64 (in float32 rounding dominates for any useful ``h``).

    ``x`` is perturbed **in place** and restored afterwards, so ``f`` may either use its
    argument or close over the same array (e.g. ``lambda g: batchnorm_forward(x, g, beta)[0]``).
    Costs ``2 * x.size`` calls of ``f``.

    Examples
    --------
    >>> x = np.array([1.0, 2.0])
    >>> numerical_gradient(lambda v: v**2, x, np.ones(2)).round(6)
    array([2., 4.])
    """
    _check_float_array("x", x)
    df = np.asarray(df)
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not (np.isfinite(h) and h > 0):
        raise ValueError(f"h must be a finite float > 0, got {h!r}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readonly"])
    for _ in it:
        k = it.multi_index
        old = x[k]
        x[k] = old + h
        pos = np.array(f(x), dtype=np.float64, copy=True)  # copy: f may return a view of a buffer
        x[k] = old - h
        neg = np.array(f(x), dtype=np.float64, copy=True)
        x[k] = old  # restore
        if pos.shape != df.shape:
            raise ValueError(f"df must have the shape of f(x) {pos.shape}, got {df.shape}")
        grad[k] = np.sum((pos - neg) * df) / (2.0 * h)
    return grad


def rel_error(a, b) -> float:
    r"""Largest elementwise relative error :math:`\max |a - b| / \max(10^{-8}, |a| + |b|)`.

    The floor ``1e-8`` keeps entries that are both (almost) zero from dividing by zero.
    In float64 a correct backward pass gives about ``1e-8`` or less against
    :func:`numerical_gradient` and ``1e-12`` or less against autograd.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
