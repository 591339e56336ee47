"""Argument checks shared by the public functions: clear errors that name the argument."""

from __future__ import annotations

import math
from numbers import Integral, Real

__all__ = [
    "check_eps",
    "check_momentum",
    "check_positive_int",
    "check_probability",
    "check_choice",
]


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_eps(eps, name: str = "eps") -> float:
    """eps is added to a variance before the square root: it must be a finite float > 0."""
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"{name} must be a float > 0, got {type(eps).__name__} ({eps!r})")
    if not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"{name} must be a finite float > 0, got {eps}")
    return float(eps)


def check_probability(name: str, value) -> float:
    """Return ``value`` as a float if it lies in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a float in [0, 1], got {type(value).__name__} ({value!r})")
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def check_momentum(momentum, *, allow_none: bool = True):
    """PyTorch convention: momentum in [0, 1] weights the *new* batch; None = cumulative average."""
    if momentum is None:
        if allow_none:
            return None
        raise TypeError("momentum must be a float in [0, 1], got None")
    return check_probability("momentum", momentum)


def check_choice(name: str, value, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")
    return value


# --- appended by the NORM helper (functional.py / layers.py) -------------------------------


class ShapeError(ValueError, RuntimeError):
    """A tensor argument has the wrong shape (or a required one is missing).

    A ValueError by this project's convention, and also a RuntimeError because that is what
    PyTorch raises for the same mistake: ``except`` clauses written for either keep working.
    """


class DTypeError(TypeError, RuntimeError):
    """Tensor arguments have incompatible dtypes (PyTorch raises RuntimeError, we add TypeError)."""


def check_floating(name: str, tensor) -> None:
    """Raise TypeError unless ``tensor`` is a floating-point torch.Tensor."""
    import torch  # local import: this module must stay importable without torch

    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")


__all__ += ["ShapeError", "DTypeError", "check_floating"]
