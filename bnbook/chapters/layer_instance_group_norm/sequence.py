"""A tiny transformer block on padded, variable-length sequences: LN vs RMSNorm vs BN.

Part of chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm"
(``notebooks/04_layer_instance_group_norm.ipynb``).  The task is synthetic: sequences of 4 to
``max_len`` tokens from a small vocabulary, padded with token 0 to the longest sequence of the
batch; the label says whether token 1 occurs more often than token 2.  The model is one
pre-norm transformer block (Xiong et al. 2020) with a final norm and a masked mean pool.

``norm="batch"`` is what a naive port of a CNN habit does: ``BatchNorm1d`` over the feature
axis of the (N, L, D) activations, so one mean and variance per feature pooled over every
sample *and every position, padding included*.  LayerNorm and RMSNorm normalize each token on
its own and cannot see the padding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bnbook._validate import ShapeError, check_choice, check_positive_int
from bnbook.layers import make_norm
from bnbook.state import num_threads

__all__ = ["SEQ_NORMS", "PAD", "make_sequences", "pad_batch", "SeqNorm", "TinyTransformer", "train_sequence_model",
           "sequence_accuracy", "padding_statistics"]  # fmt: skip

SEQ_NORMS = ("layer", "rms", "batch")
PAD = 0


def make_sequences(num: int, *, vocab: int = 6, min_len: int = 4, max_len: int = 32, seed: int = 0):
    """``num`` random sequences (list of int64 tensors of random lengths) and their labels (num,).

    Tokens are 1..vocab (0 is the padding token); label 1 if token 1 occurs more often than token 2.
    """
    num = check_positive_int("num", num)
    vocab = check_positive_int("vocab", vocab, minimum=2)
    min_len = check_positive_int("min_len", min_len)
    max_len = check_positive_int("max_len", max_len)
    if max_len < min_len:
        raise ValueError(f"max_len ({max_len}) must be >= min_len ({min_len})")
    g = torch.Generator().manual_seed(check_positive_int("seed", seed, minimum=0))
    lengths = torch.randint(min_len, max_len + 1, (num,), generator=g)
    seqs = [torch.randint(1, vocab + 1, (int(n),), generator=g) for n in lengths]
    labels = torch.tensor([int((s == 1).sum() > (s == 2).sum()) for s in seqs])
    return seqs, labels


def pad_batch(seqs) -> tuple[Tensor, Tensor]:
    """Pad a list of 1-D token tensors to the longest: tokens (N, L) and the padding mask (N, L), True = pad."""
    if not seqs:
        raise ValueError("seqs must hold at least one sequence")
    for i, s in enumerate(seqs):
        if not isinstance(s, Tensor) or s.dim() != 1 or s.numel() == 0:
            raise ShapeError(f"seqs[{i}] must be a non-empty 1-D tensor of tokens, got {getattr(s, 'shape', s)}")
    length = max(s.numel() for s in seqs)
    tokens = torch.full((len(seqs), length), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : s.numel()] = s
    return tokens, tokens == PAD


class SeqNorm(nn.Module):
    """Normalization of (N, L, D) token features: ``"layer"``, ``"rms"`` or ``"batch"`` (pads included)."""

    def __init__(self, kind: str, d: int, impl: str = "torch") -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, SEQ_NORMS)
        d = check_positive_int("d", d)
        # LN and RMSNorm over the last axis D; BN over D as after a linear layer (spatial_dims=0)
        self.norm = make_norm(kind, d, spatial_dims=0, impl=impl)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ShapeError(f"expected token features (N, L, D), got shape {list(x.shape)}")
        if self.kind == "batch":
            return self.norm(x.transpose(1, 2)).transpose(1, 2)  # BN1d wants (N, D, L)
        return self.norm(x)


class TinyTransformer(nn.Module):
    """Embedding + positions, one pre-norm block (attention, MLP), a final norm, masked mean pool, linear."""

    def __init__(self, norm: str = "layer", *, vocab: int = 6, d: int = 32, heads: int = 2, max_len: int = 32,
                 num_classes: int = 2, seed: int = 0) -> None:  # fmt: skip
        super().__init__()
        check_choice("norm", norm, SEQ_NORMS)
        d, heads = check_positive_int("d", d), check_positive_int("heads", heads)
        if d % heads:
            raise ValueError(f"heads ({heads}) must divide d ({d})")
        self.max_len = check_positive_int("max_len", max_len)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_positive_int("seed", seed, minimum=0))
            self.embed = nn.Embedding(check_positive_int("vocab", vocab) + 1, d, padding_idx=PAD)
            self.pos = nn.Parameter(0.5 * torch.randn(max_len, d))
            self.norm1, self.norm2, self.norm_f = SeqNorm(norm, d), SeqNorm(norm, d), SeqNorm(norm, d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
            self.head = nn.Linear(d, check_positive_int("num_classes", num_classes))

    def features(self, tokens: Tensor, pad: Tensor) -> Tensor:
        """Token features after the final norm, (N, L, D)."""
        if tokens.dim() != 2 or pad.shape != tokens.shape:
            raise ShapeError(f"tokens and pad must both be (N, L), got {list(tokens.shape)} and {list(pad.shape)}")
        if tokens.shape[1] > self.max_len:
            raise ShapeError(f"sequences of length {tokens.shape[1]} exceed max_len ({self.max_len})")
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]  # (N, L, D)
        h = self.norm1(x)
        x = x + self.attn(h, h, h, key_padding_mask=pad, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return self.norm_f(x)

    def forward(self, tokens: Tensor, pad: Tensor) -> Tensor:
        x = self.features(tokens, pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)  # (N, L, 1)
        pooled = (x * keep).sum(1) / keep.sum(1)  # (N, D): mean over the real tokens
        return self.head(pooled)


def train_sequence_model(model: TinyTransformer, seqs, labels: Tensor, *, steps: int = 400, batch_size: int = 32,
                         lr: float = 3e-3, seed: int = 0, threads: int | None = 1) -> list[float]:  # fmt: skip
    """Adam on random padded batches; returns the loss of every step."""
    steps, batch_size = check_positive_int("steps", steps), check_positive_int("batch_size", batch_size)
    if len(seqs) != len(labels):
        raise ValueError(f"seqs ({len(seqs)}) and labels ({len(labels)}) must have the same length")
    g = torch.Generator().manual_seed(check_positive_int("seed", seed, minimum=0))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    with num_threads(threads):
        for _ in range(steps):
            idx = torch.randint(0, len(seqs), (batch_size,), generator=g)
            tokens, pad = pad_batch([seqs[i] for i in idx])
            loss = nn.functional.cross_entropy(model(tokens, pad), labels[idx])
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss {loss.item()} at step {len(losses) + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


@torch.no_grad()
def sequence_accuracy(
    model: TinyTransformer, seqs, labels: Tensor, *, batch_size: int = 64, training: bool = False
) -> float:
    """Accuracy over padded batches of ``batch_size`` (in order); ``training=True`` evaluates in train mode."""
    batch_size = check_positive_int("batch_size", batch_size)
    was = {m: m.training for m in model.modules()}
    model.train(training)
    try:
        right = 0
        for i in range(0, len(seqs), batch_size):
            tokens, pad = pad_batch(seqs[i : i + batch_size])
            right += int((model(tokens, pad).argmax(1) == labels[i : i + batch_size]).sum())
    finally:
        for m, t in was.items():
            m.training = t
    return right / len(seqs)


def padding_statistics(x: Tensor, pad: Tensor) -> dict[str, Tensor]:
    """Per-feature mean and variance of (N, L, D) features: over real tokens only, and BN-style over all.

    Returns ``{"real_mean", "real_var", "all_mean", "all_var"}``, each (D,), and ``"pad_fraction"``.
    """
    if x.dim() != 3 or pad.shape != x.shape[:2]:
        raise ShapeError(f"x must be (N, L, D) and pad (N, L), got {list(x.shape)} and {list(pad.shape)}")
    real = x[~pad]  # (number of real tokens, D)
    flat = x.reshape(-1, x.shape[-1])  # (N * L, D), what BatchNorm1d pools
    return {
        "real_mean": real.mean(0),
        "real_var": real.var(0, correction=0),
        "all_mean": flat.mean(0),
        "all_var": flat.var(0, correction=0),
        "pad_fraction": pad.float().mean(),
    }
