"""The control specs of a :class:`~bnbook.widgets.Panel`: :class:`Slider`, :class:`Choice`, :class:`Toggle`.

Frozen dataclasses that check and normalize their values once (NumPy scalars become plain
Python numbers, labels must be distinct), so the live widget, the static frames and
``Panel.set`` all see the same values.  Introduced with the preface's panel
(``notebooks/00_preface.ipynb``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from bnbook._validate import check_real

__all__ = ["Slider", "Choice", "Toggle", "Control"]


def _as_number(name: str, v: Any) -> int | float:
    """Plain Python int/float from an int/float/NumPy scalar; bools, NaN and inf raise (``name`` names it)."""
    if isinstance(v, np.generic):
        v = v.item()
    x = check_real(name, v)  # TypeError for bools and non-numbers, ValueError for NaN and inf
    return int(v) if isinstance(v, Integral) else x


def _format_label(fmt: str | Callable[[Any], str], v: Any, label: str) -> str:
    try:
        return fmt(v) if callable(fmt) else fmt.format(v)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"Slider {label!r}: fmt={fmt!r} cannot format {v!r} ({exc})") from None


def _check_unique_labels(kind: str, label: str, labels: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):
        if lab in seen:
            raise ValueError(
                f"{kind} {label!r}: values #{seen[lab]} and #{i} have the same label {lab!r}; "
                "use distinct values or a more precise fmt"
            )
        seen[lab] = i


def _check_label(label: Any, kind: str) -> None:
    if not isinstance(label, str):
        raise TypeError(f"{kind} label must be a str, got {type(label).__name__} ({label!r})")


def _find(values: Sequence[Any], value: Any, *, numeric: bool) -> int | None:
    """Index of ``value`` in ``values``, else None.

    bools never match numbers (``True == 1`` in Python); with ``numeric`` a float also
    matches to 1e-9 relative, so ``np.logspace(-5, -1, 5)`` finds ``1e-5``.
    """
    is_bool = isinstance(value, bool)
    for i, v in enumerate(values):
        if isinstance(v, bool) == is_bool and v == value:
            return i
    if numeric and not is_bool and isinstance(value, Real):
        for i, v in enumerate(values):
            if math.isclose(v, value, rel_tol=1e-9, abs_tol=0.0):
                return i
    return None


@dataclass(frozen=True)
class Slider:
    """A slider over a discrete, ordered set of numbers (e.g. log-spaced ``eps``).

    Parameters
    ----------
    label : str
        Text shown beside the slider.
    values : sequence of numbers
        Every position of the slider, in display order (ints stay ints, so a batch-size
        slider passes ints to ``update``).
    value : number
        Initial position; must be one of ``values`` (floats matched to 1e-9 relative).
    fmt : str or callable, default ``"{:g}"``
        Label of each value, ``fmt.format(v)`` or ``fmt(v)``; labels must be distinct.
    continuous_update : bool, default True
        Live widget only: False redraws when the slider is released, not while dragged.
    static_values : sequence of numbers, optional
        Subset of ``values`` pre-rendered for the static book (must contain ``value``).

    Examples
    --------
    >>> Slider("eps", [1e-5, 1e-3, 1e-1], 1e-5).labels
    ('1e-05', '0.001', '0.1')
    """

    label: str
    values: Sequence[float]
    value: float
    _: KW_ONLY
    fmt: str | Callable[[Any], str] = "{:g}"
    continuous_update: bool = True
    static_values: Sequence[float] | None = None

    def __post_init__(self) -> None:
        _check_label(self.label, "Slider")
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, (Sequence, np.ndarray)):
            raise TypeError(
                f"Slider {self.label!r}: values must be a sequence of numbers, got {type(self.values).__name__}"
            )
        where = f"Slider {self.label!r}"
        values = tuple(_as_number(f"{where} values must be numbers: values[{i}]", v) for i, v in enumerate(self.values))
        if not values:
            raise ValueError(f"{where}: values is empty; give at least one number")
        if not (isinstance(self.fmt, str) or callable(self.fmt)):
            raise TypeError(f"{where}: fmt must be a format string or a callable")
        labels = tuple(_format_label(self.fmt, v, self.label) for v in values)
        _check_unique_labels("Slider", self.label, labels)
        value = _as_number(f"{where} value", self.value)
        i = _find(values, value, numeric=True)
        if i is None:
            raise ValueError(f"{where}: value {value!r} is not one of values {list(values)}")
        static = None
        if self.static_values is not None:
            static = []
            for k, v in enumerate(self.static_values):
                j = _find(
                    values, _as_number(f"{where} static_values must be numbers: static_values[{k}]", v), numeric=True
                )
                if j is None:
                    raise ValueError(f"{where}: static_values entry {v!r} is not one of values {list(values)}")
                if values[j] not in static:
                    static.append(values[j])
            if values[i] not in static:
                raise ValueError(f"{where}: static_values must contain the initial value {values[i]!r}")
            static = tuple(v for v in values if v in static)  # keep the slider's order
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "value", values[i])
        object.__setattr__(self, "static_values", static)
        object.__setattr__(self, "continuous_update", bool(self.continuous_update))

    @property
    def labels(self) -> tuple[str, ...]:
        """Display label of every value, in order."""
        return tuple(_format_label(self.fmt, v, self.label) for v in self.values)

    def _options(self) -> tuple[Any, ...]:
        return self.values

    def _static_options(self) -> tuple[Any, ...]:
        return self.static_values if self.static_values is not None else self.values


@dataclass(frozen=True)
class Choice:
    """A choice among a few options (e.g. ``"batch"``, ``"layer"``, ``"group"``): a dropdown.

    ``options`` may be any values; their labels are ``str(option)`` and must be distinct.

    Examples
    --------
    >>> Choice("norm", ["batch", "layer"], "batch").labels
    ('batch', 'layer')
    """

    label: str
    options: Sequence[Any]
    value: Any

    def __post_init__(self) -> None:
        _check_label(self.label, "Choice")
        if isinstance(self.options, (str, bytes)) or not isinstance(self.options, (Sequence, np.ndarray)):
            raise TypeError(
                f"Choice {self.label!r}: options must be a sequence (list or tuple), got {type(self.options).__name__}"
            )
        options = tuple(o.item() if isinstance(o, np.generic) else o for o in self.options)
        if not options:
            raise ValueError(f"Choice {self.label!r}: options is empty; give at least one option")
        _check_unique_labels("Choice", self.label, [str(o) for o in options])
        value = self.value.item() if isinstance(self.value, np.generic) else self.value
        i = _find(options, value, numeric=False)
        if i is None:
            raise ValueError(f"Choice {self.label!r}: value {value!r} is not one of options {list(options)}")
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "value", options[i])

    @property
    def labels(self) -> tuple[str, ...]:
        """Display label of every option, in order."""
        return tuple(str(o) for o in self.options)

    def _options(self) -> tuple[Any, ...]:
        return self.options

    _static_options = _options


@dataclass(frozen=True)
class Toggle:
    """An on/off switch (a checkbox), e.g. ``Toggle("affine", True)``.

    Examples
    --------
    >>> Toggle("affine", True).labels
    ('off', 'on')
    """

    label: str
    value: bool

    def __post_init__(self) -> None:
        _check_label(self.label, "Toggle")
        value = self.value.item() if isinstance(self.value, np.bool_) else self.value
        if not isinstance(value, bool):
            raise TypeError(f"Toggle {self.label!r}: value must be True or False, got {value!r}")
        object.__setattr__(self, "value", value)

    @property
    def labels(self) -> tuple[str, ...]:
        """``("off", "on")``: the labels of False and True."""
        return ("off", "on")

    def _options(self) -> tuple[bool, ...]:
        return (False, True)

    _static_options = _options


#: Any control spec a Panel accepts.
Control = Slider | Choice | Toggle


def kind(spec: Control) -> str:
    """``"slider"``, ``"choice"`` or ``"toggle"``: the static page's name for the control's kind."""
    return "slider" if isinstance(spec, Slider) else "choice" if isinstance(spec, Choice) else "toggle"


def snap(name: str, spec: Control, v: Any) -> Any:
    """``v`` as the option of ``spec`` it names (NumPy scalars accepted), else ValueError naming control ``name``."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(spec, Toggle):
        if not isinstance(v, bool):
            raise ValueError(f"control {name!r} is a Toggle: value must be True or False, got {v!r}")
        return v
    opts = spec._options()
    i = _find(opts, v, numeric=isinstance(spec, Slider))
    if i is None:
        raise ValueError(f"control {name!r}: {v!r} is not one of {list(opts)}")
    return opts[i]
