"""Loss and gradient along the gradient direction: the "landscape" measurements of Santurkar et al.

Introduced in chapter 1 ("Internal covariate shift"), which asks whether batch norm makes the
loss smoother (Santurkar, Tsipras, Ilyas & Madry 2018, Fig. 4,
https://arxiv.org/abs/1805.11604).  Works on any classifier; the network is left exactly as it
was.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from bnbook.state import check_module, preserved

__all__ = ["gradient_landscape"]


def _flat_grad(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])


def gradient_landscape(
    net: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    etas: Sequence[float],
    *,
    training: bool = True,
) -> dict:
    """Loss and gradient along the negative gradient direction (Santurkar et al. 2018, Fig. 4).

    With ``w`` the parameters, ``L`` the mean cross-entropy on the batch ``(X, y)`` and
    ``g = grad L(w)``, evaluates for every step size ``eta``

    * ``loss[k] = L(w - eta_k g)``   (how much the loss varies along the step: "loss landscape")
    * ``grad_change[k] = ||grad L(w - eta_k g) - g||``  ("gradient predictiveness")

    and ``beta[k] = grad_change[k] / (eta_k ||g||)``, whose maximum Santurkar et al. call the
    "effective beta-smoothness". The network is left exactly as it was (parameters, BN
    running statistics, noise generators, train/eval flags). (A noisy layer (chapter 1's ``NoisyBatchNorm1d``)
    draws fresh noise at every forward pass, so its measurements include the noise.)

    Parameters
    ----------
    net : nn.Module
        Maps ``X`` to ``(N, num_classes)`` logits.
    X, y : torch.Tensor
        A batch, ``(N, ...)`` and int64 ``(N,)``.
    etas : sequence of float
        Step sizes (> 0).
    training : bool, default True
        Evaluate in training mode (BN uses the batch's statistics, as during SGD).

    Returns
    -------
    dict
        ``loss0`` (float), ``grad_norm`` (float), and arrays of shape ``(E,)``: ``etas``,
        ``loss``, ``grad_change``, ``beta``.
    """
    check_module(net)
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("X and y must be torch.Tensors")
    if y.dim() != 1 or X.shape[0] != y.shape[0] or y.shape[0] < 2:
        raise ValueError(
            f"X (N, ...) and y (N,) must hold the same N >= 2 examples, got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    etas_arr = np.asarray(etas, dtype=np.float64).ravel()
    if etas_arr.size == 0 or not np.all(np.isfinite(etas_arr)) or np.any(etas_arr <= 0):
        raise ValueError(f"etas must be a non-empty sequence of finite step sizes > 0, got {etas!r}")
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ValueError("net has no trainable parameters")
    loss_fn = nn.CrossEntropyLoss()
    with preserved(net, params=True):
        net.train(training)
        w0 = [p.detach().clone() for p in params]
        loss0 = loss_fn(net(X), y)
        g0 = _flat_grad(loss0, params)  # (P,)
        g_norm = float(g0.norm())
        losses, changes = [], []
        for eta in etas_arr:
            with torch.no_grad():
                offset = 0
                for p, w in zip(params, w0):
                    n = p.numel()
                    p.copy_(w - float(eta) * g0[offset : offset + n].view_as(p))
                    offset += n
            loss = loss_fn(net(X), y)
            g = _flat_grad(loss, params)
            losses.append(loss.item())
            changes.append(float((g - g0).norm()))
    losses_arr, changes_arr = np.asarray(losses), np.asarray(changes)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = changes_arr / (etas_arr * g_norm) if g_norm > 0 else np.full_like(changes_arr, np.nan)
    return {
        "loss0": loss0.item(),
        "grad_norm": g_norm,
        "etas": etas_arr,
        "loss": losses_arr,
        "grad_change": changes_arr,
        "beta": beta,
    }
