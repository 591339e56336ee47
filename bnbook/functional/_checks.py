"""Pieces shared by every op of ``bnbook.functional``: argument checks and ``_moments``.

The checks raise PyTorch's messages (the tests compare them) with this project's exception
types: ``ShapeError`` and ``DTypeError`` are a ValueError / TypeError *and* a RuntimeError.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from bnbook._validate import DTypeError, ShapeError, check_floating, check_real


def _moments(x: Tensor, dims: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(x - mean, mean, biased var)`` over ``dims``, statistics kept with size-1 dims.

    Two passes (mean first, then the mean of squared deviations) are as stable as Welford's
    algorithm even when the mean is large compared with the spread, and the centred tensor is
    reused for the output.  (``torch.var_mean`` would be a one-liner, but on CPU it was 3-7x
    slower than these two passes on LeNet's activations.)
    """
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dims, keepdim=True)  # biased: divides by n
    return centered, mean, var


def _check_eps(eps, fn: str, *, positive: bool = False) -> float:
    """Return ``eps`` as a float; PyTorch's rule and wording, plus: it must be finite.

    eps must be > 0 to normalize with batch statistics (a constant channel has var = 0), and
    >= 0 otherwise.  The number test is the shared ``check_real``; only the messages are
    PyTorch's.
    """
    try:
        return check_real("eps", eps, low=0.0, low_open=positive)
    except TypeError:
        raise TypeError(f"{fn} eps must be a float, got {type(eps).__name__} ({eps!r})") from None
    except ValueError:
        if positive and not eps > 0.0:  # also NaN
            message = f"{fn} eps must be positive during training, but got {eps}"
        elif not eps >= 0.0:
            message = f"{fn} eps must be non-negative, but got {eps}"
        else:  # +inf: every output would be 0
            message = f"{fn} eps must be finite, but got {eps}"
        raise ValueError(message) from None


def _check_input(input: Tensor, fn: str, min_dim: int) -> None:
    check_floating("input", input)
    if input.dim() < min_dim:
        raise ShapeError(
            f"{fn} expected input with at least {min_dim} dimensions "
            f"(N, C, ...), got {input.dim()}D input of shape {list(input.shape)}"
        )


def _check_dtype(name: str, t: Tensor | None, input: Tensor) -> None:
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(t).__name__}")
    if t.dtype != input.dtype:
        raise DTypeError(
            f"mixed dtype: {name} has dtype {t.dtype} but input has dtype {input.dtype}; "
            "all tensors must share the same dtype"
        )


def _check_per_channel(name: str, t: Tensor | None, num: int, input: Tensor) -> None:
    """``t`` must be None or a vector of ``num`` values with the dtype of ``input``."""
    _check_dtype(name, t, input)
    if t is not None and t.numel() != num:  # same wording as PyTorch's own check
        raise ShapeError(f"{name} should contain {num} elements not {t.numel()}")


def _check_batch_size(size: Sequence[int]) -> None:
    # Batch statistics of a single value per channel are undefined (var = 0, x - mean = 0);
    # same test and message as PyTorch's.
    values_per_channel = size[0]
    for s in size[2:]:
        values_per_channel *= s
    if values_per_channel == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {size}")


def _check_normalized_shape(fn: str, input: Tensor, normalized_shape) -> tuple[int, ...]:
    """Return ``normalized_shape`` as a tuple; it must be the trailing shape of ``input``.

    ``fn`` is ``"layer_norm"`` or ``"rms_norm"``; their PyTorch messages differ slightly
    (``[*, 4]`` and ``[*4]``, and rms_norm checks the number of dimensions first).
    """
    if isinstance(normalized_shape, int) or not isinstance(normalized_shape, Sequence):
        raise TypeError(
            f"{fn}(): normalized_shape must be a tuple or list of ints, got {type(normalized_shape).__name__}"
        )
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0:
        raise ShapeError(
            "Expected normalized_shape to be at least 1-dimensional, i.e., containing at "
            "least one element, but got normalized_shape = []"
        )
    rms = fn == "rms_norm"
    if rms and k > input.dim():
        raise ShapeError(f"Input tensor must have at least {k} dimensions, but got {input.dim()}")
    if k > input.dim() or tuple(input.shape[-k:]) != normalized_shape:
        raise ShapeError(
            f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
            f"[*{'' if rms else ', '}{', '.join(map(str, normalized_shape))}], but got input of size"
            f"{list(input.shape)}"
        )
    return normalized_shape


def _check_elementwise(name: str, t: Tensor | None, normalized_shape: tuple[int, ...], input: Tensor) -> None:
    """``t`` must be None or a tensor of shape ``normalized_shape`` with the dtype of ``input``."""
    if t is not None and isinstance(t, Tensor) and tuple(t.shape) != normalized_shape:
        raise ShapeError(
            f"Expected {name} to be of same shape as normalized_shape, but got {name} of "
            f"shape {list(t.shape)} and normalized_shape = {list(normalized_shape)}"
        )
    _check_dtype(name, t, input)


def _channel_shape(input: Tensor) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector against ``input``: (1, C, 1, ..., 1)."""
    return (1, input.shape[1]) + (1,) * (input.dim() - 2)


def _affine_per_channel(out: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    """``out * weight + bias`` with (C,) vectors broadcast over axis 1 of (N, C, *)."""
    shape = _channel_shape(out)  # (1, C, 1, 1)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out
