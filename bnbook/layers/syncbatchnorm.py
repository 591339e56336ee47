"""Synchronized batch normalization written from scratch on ``torch.distributed``.

For the book's part on batch norm in data-parallel training (no chapter uses it yet).  With
data parallelism every process (rank) sees only its shard of the batch; ``SyncBatchNorm``
normalizes with the statistics of the *whole* batch, the concatenation of all shards, so that
training on R ranks computes what one BatchNorm over the full batch would.
``torch.nn.SyncBatchNorm`` does the same but refuses CPU tensors ("SyncBatchNorm expected input
tensor to be on GPU ..."), even under the gloo backend; this one runs anywhere
``torch.distributed`` does: gloo on CPU, NCCL on GPUs (every tensor lives on ``input.device``).

Per channel, each rank contributes its count n_r, mean m_r and M2_r (the sum of squared
deviations from its *own* mean, never a raw sum of squares, which would cancel
catastrophically when the mean is large).  ``merge_moments`` combines them with the parallel
formula of Chan, Golub & LeVeque (1979)::

    n = sum_r n_r,   mean = sum_r n_r m_r / n,   M2 = sum_r M2_r + sum_r n_r (m_r - mean)^2

(their pairwise update applied to all R groups at once).  The layer normalizes with mean and
the biased variance M2 / n, and puts the unbiased M2 / (n - 1), with the *global* n, into the
running variance.  ``tests/test_syncbatchnorm.py`` checks everything against one
``torch.nn.BatchNorm`` over the concatenated batch, in two gloo processes on CPU.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from bnbook._validate import DTypeError, ShapeError
from bnbook.layers.batchnorm import _BatchNorm

__all__ = ["SyncBatchNorm", "merge_moments"]

# dtypes that the header exchanged before the statistics can name (index = code; -1 = other).
_DTYPES = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
    torch.complex64,
    torch.complex128,
)
# Local problems, as codes in the header so that every rank can name the problem of any rank.
_OK, _BAD_DIM, _NOT_FLOAT, _BAD_CHANNELS, _BAD_DTYPE = range(5)
_ERRORS = {_BAD_DIM: ValueError, _NOT_FLOAT: TypeError, _BAD_CHANNELS: ShapeError, _BAD_DTYPE: DTypeError}


def merge_moments(counts: Tensor, means: Tensor, m2s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Merge per-group counts, means and M2s into those of the union (Chan et al. 1979).

    Parameters
    ----------
    counts : Tensor of shape (R,)
        Number of values n_r in each group (0 allowed: such a group contributes nothing).
    means : Tensor of shape (R, C)
        Mean of each group per channel (any finite value where n_r = 0, e.g. 0).
    m2s : Tensor of shape (R, C)
        Sum of squared deviations from the group's own mean, per channel (0 where n_r = 0).

    Returns
    -------
    n : Tensor of shape ()
        Total count, in the dtype of ``means``.
    mean : Tensor of shape (C,)
        Mean of the union (NaN if n = 0).
    m2 : Tensor of shape (C,)
        Sum of squared deviations of the union from ``mean``: biased variance m2 / n,
        unbiased m2 / (n - 1).

    Examples
    --------
    >>> import torch
    >>> a = torch.randn(3, 2, dtype=torch.float64) + 1e6  # two groups of (N_r, C) values
    >>> b = torch.randn(7, 2, dtype=torch.float64) + 1e6
    >>> means = torch.stack([a.mean(0), b.mean(0)])  # (R, C) = (2, 2)
    >>> m2s = torch.stack([((a - a.mean(0)) ** 2).sum(0), ((b - b.mean(0)) ** 2).sum(0)])
    >>> n, mean, m2 = merge_moments(torch.tensor([3, 7]), means, m2s)
    >>> bool(torch.allclose(m2 / n, torch.cat([a, b]).var(0, correction=0)))
    True
    """
    w = counts.to(means.dtype).unsqueeze(1)  # (R, 1)
    n = w.sum()
    mean = (w * means).sum(0) / n  # (C,)
    # Within-group scatter plus between-group scatter: no difference of large sums anywhere.
    m2 = m2s.sum(0) + (w * (means - mean) ** 2).sum(0)  # (C,)
    return n, mean, m2


def _local_moments(x: Tensor) -> tuple[int, Tensor, Tensor]:
    """Count per channel, mean (C,) and M2 (C,) of this rank's (N, C, *) shard; zeros if empty."""
    count = x.numel() // x.shape[1]
    if count == 0:
        zeros = x.new_zeros(x.shape[1])
        return 0, zeros, zeros.clone()
    dims = [0, *range(2, x.dim())]  # every axis except the channel axis
    mean = x.mean(dims)  # (C,)
    centered = x - mean.view(_channel_shape(x))  # (N, C, *)
    return count, mean, (centered * centered).sum(dims)


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    """(1, C, 1, ..., 1): broadcasts a per-channel vector against ``x``."""
    return (1, x.shape[1]) + (1,) * (x.dim() - 2)


def _update_running_(
    running_mean: Tensor, running_var: Tensor, mean: Tensor, m2: Tensor, n: Tensor, factor: float
) -> None:
    """``r <- (1 - factor) r + factor * stat`` in place; variance: unbiased M2 / (n - 1), global n."""
    with torch.no_grad():
        running_mean.mul_(1.0 - factor).add_(mean, alpha=factor)
        running_var.mul_(1.0 - factor).add_(m2 / (n - 1), alpha=factor)


class _SyncBatchNormFunction(torch.autograd.Function):
    """y = gamma * (x - mean) * inv_std + beta with the statistics of the whole (all-rank) batch.

    ``mean`` and ``inv_std`` arrive detached; the backward pass accounts for their dependence on
    every rank's input by all-reducing the two per-channel sums it needs::

        dL/dx = gamma * inv_std * (g - sum(g) / n - x_hat * sum(g * x_hat) / n)

    with the sums over the full batch and n its global count, which is exactly the gradient of
    one BatchNorm over the concatenated batch.  ``dL/dgamma = sum(g * x_hat)`` and
    ``dL/dbeta = sum(g)`` are returned *local* (this rank's shard only), as torch's SyncBatchNorm
    does: DistributedDataParallel (or an explicit ``all_reduce`` of the parameter gradients)
    sums them over the ranks, like every other parameter's gradient.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mean, inv_std, n, group):
        shape = _channel_shape(x)  # (1, C, 1, 1) for a 4-D input
        x_hat = (x - mean.view(shape)) * inv_std.view(shape)  # (N, C, *)
        out = x_hat
        if weight is not None:
            out = out * weight.view(shape)
        if bias is not None:
            out = out + bias.view(shape)
        if out is x_hat:  # a copy: an in-place op on the output must not touch x_hat
            out = x_hat.clone()
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.n, ctx.group, ctx.has_bias = n, group, bias is not None
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x_hat, inv_std, weight = ctx.saved_tensors
        dims = [0, *range(2, x_hat.dim())]
        sum_g = grad_out.sum(dims)  # (C,): this rank's dL/dbeta; zeros on an empty shard
        sum_g_xhat = (grad_out * x_hat).sum(dims)  # (C,): this rank's dL/dgamma
        grad_x = None
        # As in torch: the collective runs iff the input needs a gradient, which must agree
        # across ranks (it does whenever every rank runs the same model).
        if ctx.needs_input_grad[0]:
            sums = torch.cat([sum_g, sum_g_xhat])  # (2C,): one collective instead of two
            dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=ctx.group)
            total_g, total_g_xhat = sums.split(sum_g.numel())
            view = _channel_shape(x_hat)
            a = inv_std if weight is None else inv_std * weight  # (C,)
            grad_x = a.view(view) * (
                grad_out - (total_g / ctx.n).view(view) - x_hat * (total_g_xhat / ctx.n).view(view)
            )  # (N, C, *)
        return (
            grad_x,
            sum_g_xhat if weight is not None else None,
            sum_g if ctx.has_bias else None,
            None,  # mean
            None,  # inv_std
            None,  # n
            None,  # group
        )


class SyncBatchNorm(_BatchNorm):
    """Batch normalization over the batches of all ranks; twin of ``torch.nn.SyncBatchNorm``.

    In training mode, inside an initialized process group of more than one rank, every rank's
    (N_r, C, *) shard is normalized with the mean and biased variance of the concatenation of
    all shards, and the running statistics (same buffers and ``state_dict`` keys as
    ``BatchNorm``) are updated with them, identically on every rank.  Shards may differ in
    size, and may be empty.  Outside a process group, with a world size of 1, or in eval mode,
    the layer behaves exactly as ``BatchNorm1d/2d/3d`` (as torch's does), except that it accepts
    any (N, C, *) input with at least 2 dimensions: eval mode never synchronizes, so without
    running statistics (``track_running_stats=False``) each rank normalizes with its own shard's.

    Each training-mode forward runs two collectives (a small header: shapes and dtypes, so that
    a mismatch raises the same clear error on every rank instead of hanging some; then the
    per-channel statistics) and the backward pass one (an all-reduce of two per-channel sums).
    Gradients of ``weight`` and ``bias`` are this rank's own; all-reduce them as DDP does.
    Every rank must call the layer the same number of times, in the same order.

    Parameters
    ----------
    num_features : int
        Number of channels C.
    eps, momentum, affine, track_running_stats, device, dtype, bias
        As for ``bnbook.layers.BatchNorm1d``.
    process_group : ProcessGroup or None
        The ranks whose batches are pooled; None means the default (world) group.

    Examples
    --------
    >>> import torch
    >>> bn = SyncBatchNorm(3)  # no process group: a plain BatchNorm
    >>> bn(torch.randn(8, 3, 5) * 2 + 1).shape, bn.num_batches_tracked.item()
    (torch.Size([8, 3, 5]), 1)
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group=None,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype, bias=bias
        )
        if process_group is not None and not (dist.is_available() and isinstance(process_group, dist.ProcessGroup)):
            raise TypeError(
                f"process_group must be a torch.distributed.ProcessGroup or None, got {type(process_group).__name__}"
            )
        self.process_group = process_group

    def _group_and_size(self):
        """The process group to synchronize over and its size, or (None, 1) without one."""
        if not (dist.is_available() and dist.is_initialized()):
            return None, 1
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        return group, dist.get_world_size(group)  # -1 on a rank outside the group: no sync

    def forward(self, input: Tensor) -> Tensor:
        group, world_size = self._group_and_size()
        sync = self.training and world_size > 1  # torch syncs in training mode only
        if sync:
            # Checked together with the other ranks: a problem raises on all of them.
            counts = self._exchange_header(input, group, world_size)
        else:
            self._check_local(input)

        factor = self._count_batch()  # counted before the statistics, as in BatchNorm
        if not sync:
            return self._normalize(input, factor)  # BatchNorm's computation, on any (N, C, *) input

        total = sum(counts)
        if total == 1:  # BatchNorm's test and message, for the pooled batch
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {input.size()} "
                f"(1 value per channel over the {world_size} ranks of the process group)"
            )
        if total == 0:  # every shard empty: no statistics, as BatchNorm does for an empty batch
            return input.clone()
        _, mean_r, m2_r = _local_moments(input.detach())
        local = torch.cat([mean_r, m2_r])  # (2C,)
        gathered = [torch.empty_like(local) for _ in range(world_size)]
        dist.all_gather(gathered, local, group=group)
        stats = torch.stack(gathered)  # (R, 2C): [means | M2s]
        c = input.shape[1]
        count_t = torch.tensor(counts, device=input.device)
        n, mean, m2 = merge_moments(count_t, stats[:, :c], stats[:, c:])
        inv_std = torch.rsqrt(m2 / n + self.eps)  # (C,): biased variance normalizes
        if self.track_running_stats:
            _update_running_(self.running_mean, self.running_var, mean, m2, n, factor)
        return _SyncBatchNormFunction.apply(input, self.weight, self.bias, mean, inv_std, n, group)

    def _check_local(self, input: Tensor) -> None:
        code, message = self._local_problem(input)
        if code != _OK:
            raise _ERRORS[code](message)

    def _local_problem(self, input: Tensor) -> tuple[int, str]:
        """(code, message) of what is wrong with this rank's input; (_OK, "") if nothing."""
        if not isinstance(input, Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
        if input.dim() < 2:  # torch.nn.SyncBatchNorm's message
            return _BAD_DIM, f"expected at least 2D input (got {input.dim()}D input)"
        if not input.is_floating_point():
            return _NOT_FLOAT, f"input must be a floating-point tensor, got dtype {input.dtype}"
        if input.shape[1] != self.num_features:
            return _BAD_CHANNELS, (
                f"expected input with C={self.num_features} channels (num_features), got "
                f"{input.shape[1]} (size of dim 1 of input of shape {list(input.shape)})"
            )
        own = self.weight if self.weight is not None else self.running_mean
        if own is not None and own.dtype != input.dtype:
            return _BAD_DTYPE, f"input has dtype {input.dtype} but the layer's parameters {own.dtype}"
        return _OK, ""

    def _exchange_header(self, input: Tensor, group, world_size: int) -> list[int]:
        """All-gather every rank's (problem, C, num_features, count, dtype); raise on all if any is bad.

        Returns the per-channel count of every rank.  Without this cheap first exchange, a
        rank with a wrong input would raise alone and leave the others waiting in the
        collective for the statistics, whose sizes would not even match.
        """
        code, _ = self._local_problem(input)
        channels = input.shape[1] if input.dim() >= 2 else -1
        count = input.numel() // channels if channels > 0 else 0
        dtype = _DTYPES.index(input.dtype) if input.dtype in _DTYPES else -1
        header = torch.tensor([code, input.dim(), channels, self.num_features, count, dtype], device=input.device)
        headers = [torch.empty_like(header) for _ in range(world_size)]
        dist.all_gather(headers, header, group=group)
        rows = torch.stack(headers).tolist()  # (R, 6), on the host: one sync, like torch's
        # Every rank sees the same rows, so every rank raises the same error (or none).
        bad = [(rank, row) for rank, row in enumerate(rows) if row[0] != _OK]
        if bad:
            error, problem = _ERRORS[bad[0][1][0]], "; ".join(_describe(rank, row) for rank, row in bad)
        elif len({(row[2], row[3]) for row in rows}) > 1:
            error = ShapeError
            problem = "ranks disagree on the number of channels: " + ", ".join(
                f"rank {rank}: C={row[2]} (num_features={row[3]})" for rank, row in enumerate(rows)
            )
        elif len({row[5] for row in rows}) > 1:
            error = DTypeError
            problem = "ranks disagree on the input dtype: " + ", ".join(
                f"rank {rank}: {_dtype_name(row[5])}" for rank, row in enumerate(rows)
            )
        else:
            return [row[4] for row in rows]
        raise error(f"SyncBatchNorm on rank {dist.get_rank(group)} of {world_size}: {problem}")

    @classmethod
    def convert_sync_batchnorm(cls, module: nn.Module, process_group=None) -> nn.Module:
        """Replace every BatchNorm layer in ``module`` (torch.nn or bnbook) with a SyncBatchNorm.

        As ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``: the new layers take over the
        hyperparameters, the train/eval mode, and the very same ``weight``/``bias`` parameters and
        running-statistics buffers (shared, not copied: an optimizer built on the old model
        still updates the new one).  Returns ``module`` itself, changed in place, or a new layer
        if ``module`` is a BatchNorm layer.

        Examples
        --------
        >>> from torch import nn
        >>> net = SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)))
        >>> type(net[1]).__name__
        'SyncBatchNorm'
        """
        out = module
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, _BatchNorm)):
            out = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
                bias=module.bias is not None,
            )
            if module.affine:
                out.weight = module.weight
                out.bias = module.bias
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.training = module.training
            if hasattr(module, "qconfig"):
                out.qconfig = module.qconfig
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out


def _dtype_name(code: int) -> str:
    return str(_DTYPES[code]) if 0 <= code < len(_DTYPES) else "an unsupported dtype"


def _describe(rank: int, row: list[int]) -> str:
    """Name rank ``rank``'s local problem from its header row, on any rank."""
    code, dim, channels, num_features = row[:4]
    if code == _BAD_DIM:
        return f"rank {rank}: expected at least 2D input (got {dim}D input)"
    if code == _NOT_FLOAT:
        return f"rank {rank}: input must be a floating-point tensor, got {_dtype_name(row[5])}"
    if code == _BAD_CHANNELS:
        return f"rank {rank}: expected input with C={num_features} channels (num_features), got {channels}"
    return f"rank {rank}: input dtype {_dtype_name(row[5])} does not match the layer's parameters"
