"""Argument checks shared by the whole package: clear errors that name the argument.

The one place where a number, a choice or a tensor argument is checked; every module calls
these instead of writing its own ``isinstance(..., bool) or not isinstance(..., Real)`` test.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

__all__ = [
    "check_real",
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


def check_real(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float within the bounds, else raise TypeError/ValueError.

    Accepts Python and NumPy reals, never bools.  ``low``/``high`` are inclusive unless
    ``low_open``/``high_open``.

    >>> check_real("lr", 0.5, low=0.0, low_open=True)
    0.5
    >>> check_real("lr", 0.0, low=0.0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a finite number > 0, got 0.0
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    value = float(value)
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be a finite number{' ' if bounds else ''}{' and '.join(bounds)}, got {value}")
    return value


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
