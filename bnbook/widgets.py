"""Slider panels: live in JupyterLab, pre-rendered and kernel-free in the static book.

Introduced with the first interactive figure (the covariate-shift chapter) and used by
every chapter that lets the reader move momentum, eps, batch size or learning rate and
watch activation distributions change.  This is the only bnbook module that imports
ipywidgets (lazily, inside :meth:`Panel.widget`).

Why not ``ipywidgets.interact``?  It re-creates a pyplot figure and re-encodes it
through the inline backend on every slider step (230-380 ms median for the benchmark's
two-histogram panel on a 2-core machine, benchmarks/bench_widgets.py),
and in the static book a slider does nothing because there is no kernel.  A
:class:`Panel` instead

* creates ONE :class:`matplotlib.figure.Figure` on a private Agg canvas (no pyplot, no
  inline backend, no global state) and calls ``setup(fig)`` once;
* on each change calls ``update(state, **values)``, which mutates the existing artists,
  then draws the canvas and encodes a PNG with Pillow straight from the RGBA buffer
  into an ``ipywidgets.Image`` (26-45 ms median for the same panel, same machine);
* shows ``ValueError``/``RuntimeError`` raised by ``update`` as a red message under the
  figure and keeps the last good image (e.g. PyTorch's batch-size-1 BatchNorm error);
* for the book (``BNBOOK_STATIC=1``, see :func:`show`) pre-renders frames over the grid
  of control values and embeds them, with a small vanilla-JS controller, in one
  self-contained HTML snippet: no kernel, no CDN, no external script.

Static frames: if the full product of the controls' values has at most ``max_frames``
combinations every combination is rendered ("grid" mode).  Otherwise the panel falls
back to "one-at-a-time" mode: the defaults plus every value of each control with all
other controls at their defaults; moving one control in the page then returns the
others to their defaults (a note in the panel says so).  If even that exceeds
``max_frames`` a ValueError asks for fewer values (``Slider(..., static_values=...)``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import inspect
import io
import itertools
import json
import keyword
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from numbers import Real
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as _PILImage

__all__ = [
    "Slider",
    "Choice",
    "Toggle",
    "Panel",
    "show",
    "measure_latency",
]

_ERROR_COLOR = "#b00020"
_MAX_MESSAGE_CHARS = 400
_panel_ids = itertools.count()  # per-process counter: unique, deterministic element ids


# ----------------------------------------------------------------------------- specs
def _as_number(name: str, v: Any) -> int | float:
    """Plain Python int/float from an int/float/NumPy scalar; reject bools, NaN, inf."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, Real):
        raise TypeError(f"{name} must contain numbers, got {type(v).__name__} ({v!r})")
    if not math.isfinite(v):
        raise ValueError(f"{name} must contain finite numbers, got {v}")
    return v if isinstance(v, int) else float(v)


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
        values = tuple(_as_number(f"Slider {self.label!r} values", v) for v in self.values)
        if not values:
            raise ValueError(f"Slider {self.label!r}: values is empty; give at least one number")
        if not (isinstance(self.fmt, str) or callable(self.fmt)):
            raise TypeError(f"Slider {self.label!r}: fmt must be a format string or a callable")
        labels = tuple(_format_label(self.fmt, v, self.label) for v in values)
        _check_unique_labels("Slider", self.label, labels)
        value = _as_number(f"Slider {self.label!r} value", self.value)
        i = _find(values, value, numeric=True)
        if i is None:
            raise ValueError(f"Slider {self.label!r}: value {value!r} is not one of values {list(values)}")
        static = None
        if self.static_values is not None:
            static = []
            for v in self.static_values:
                j = _find(values, _as_number(f"Slider {self.label!r} static_values", v), numeric=True)
                if j is None:
                    raise ValueError(
                        f"Slider {self.label!r}: static_values entry {v!r} is not one of values {list(values)}"
                    )
                if values[j] not in static:
                    static.append(values[j])
            if values[i] not in static:
                raise ValueError(
                    f"Slider {self.label!r}: static_values must contain the initial value {values[i]!r}"
                )
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
                f"Choice {self.label!r}: options must be a sequence (list or tuple), "
                f"got {type(self.options).__name__}"
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
    """An on/off switch (a checkbox), e.g. ``Toggle("affine", True)``."""

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
        return ("off", "on")

    def _options(self) -> tuple[bool, ...]:
        return (False, True)

    _static_options = _options


Control = Slider | Choice | Toggle


def _check_label(label: Any, kind: str) -> None:
    if not isinstance(label, str):
        raise TypeError(f"{kind} label must be a str, got {type(label).__name__} ({label!r})")


# ----------------------------------------------------------------------------- panel
@dataclass
class _Frame:
    png: bytes | None  # None: update() raised, keep the previous image
    status: str
    error: bool


class Panel:
    """A figure with controls that redraws fast in Jupyter and works without a kernel.

    Parameters
    ----------
    controls : dict[str, Slider | Choice | Toggle]
        Control specs keyed by the keyword name ``update`` receives (valid identifiers).
    setup : callable ``setup(fig) -> state``
        Called ONCE with the panel's :class:`~matplotlib.figure.Figure`: create axes and
        artists, return whatever ``update`` needs (e.g. a dict of artists).
    update : callable ``update(state, **values) -> str | None``
        Called with the value of EVERY control on each change; mutates the artists.  May
        return a short status text shown under the figure.  Raising ``ValueError`` or
        ``RuntimeError`` shows the message in red and keeps the previous image; other
        exceptions are bugs and propagate.
    figsize : (float, float), default (9, 3.2)
        Figure size in inches.
    dpi : float, default 80
        Pixels per inch of the rendered PNG (live and static).
    title : str, optional
        Bold heading above the controls.
    layout : {"tight", "constrained", None}, default "tight"
        "tight": ``fig.tight_layout()`` once after the first successful update (free
        afterwards); "constrained": constrained layout on every draw (~+20 ms); None:
        leave the layout to ``setup``.
    reset : bool, default True
        Show a "Reset" button that returns every control to its initial value.

    Examples
    --------
    >>> import numpy as np
    >>> def setup(fig):
    ...     ax = fig.add_subplot()
    ...     (line,) = ax.plot([], [])
    ...     ax.set(xlim=(0, 1), ylim=(-1, 1))
    ...     return line
    >>> def update(line, freq):
    ...     t = np.linspace(0, 1, 200)
    ...     line.set_data(t, np.sin(2 * np.pi * freq * t))
    ...     return f"freq = {freq} Hz"
    >>> panel = Panel({"freq": Slider("frequency", [1, 2, 4], 1)}, setup, update, figsize=(4, 2))
    >>> panel.render_png(freq=2)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    >>> seconds = panel.set(freq=4)
    >>> panel.status
    'freq = 4 Hz'
    """

    def __init__(
        self,
        controls: Mapping[str, Control],
        setup: Callable[[Figure], Any],
        update: Callable[..., str | None],
        *,
        figsize: tuple[float, float] = (9, 3.2),
        dpi: float = 80,
        title: str | None = None,
        layout: str | None = "tight",
        reset: bool = True,
    ) -> None:
        if not isinstance(controls, Mapping) or not controls:
            raise ValueError("controls must be a non-empty dict {name: Slider | Choice | Toggle}")
        for name, spec in controls.items():
            if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
                raise ValueError(f"control name {name!r} must be a valid Python identifier (it is a keyword of update)")
            if not isinstance(spec, (Slider, Choice, Toggle)):
                raise TypeError(f"control {name!r} must be a Slider, Choice or Toggle, got {type(spec).__name__}")
        if not callable(setup):
            raise TypeError(f"setup must be a callable setup(fig) -> state, got {type(setup).__name__}")
        if not callable(update):
            raise TypeError(f"update must be a callable update(state, **values), got {type(update).__name__}")
        if (
            not isinstance(figsize, (tuple, list))
            or len(figsize) != 2
            or not all(isinstance(s, Real) and not isinstance(s, bool) and 0 < s < 100 for s in figsize)
        ):
            raise ValueError(f"figsize must be (width, height) in inches, each in (0, 100), got {figsize!r}")
        if isinstance(dpi, bool) or not isinstance(dpi, Real) or not (10 <= dpi <= 600):
            raise ValueError(f"dpi must be a number in [10, 600], got {dpi!r}")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        if layout not in ("tight", "constrained", None):
            raise ValueError(f"layout must be 'tight', 'constrained' or None, got {layout!r}")
        self.controls: dict[str, Control] = dict(controls)
        _check_signature(update, "update", (None,), {n: s.value for n, s in self.controls.items()})
        _check_signature(setup, "setup", (None,), {})
        self._setup_fn = setup
        self._update_fn = update
        self.figsize = (float(figsize[0]), float(figsize[1]))
        self.dpi = float(dpi)
        self.title = title
        self.layout = layout
        self.reset = bool(reset)
        self.defaults: dict[str, Any] = {n: s.value for n, s in self.controls.items()}
        engine = "constrained" if layout == "constrained" else None  # "tight" runs once, later
        self.figure = Figure(figsize=self.figsize, dpi=self.dpi, layout=engine)
        FigureCanvasAgg(self.figure)  # private Agg canvas: no pyplot, no backend switch
        self._state: Any = None
        self._is_setup = False
        self._laid_out = layout != "tight"
        self._values = dict(self.defaults)
        self._png: bytes | None = None  # last good image
        self._status = ""
        self._error = False
        self._box = None  # the ipywidgets VBox, built by widget()
        self._control_widgets: dict[str, Any] = {}
        self._syncing = False

    # -- public state ---------------------------------------------------------------
    @property
    def values(self) -> dict[str, Any]:
        """Current value of every control (a copy)."""
        return dict(self._values)

    @property
    def status(self) -> str:
        """Text under the figure: update()'s return value or the error message."""
        return self._status

    @property
    def error(self) -> bool:
        """True if the last update raised ValueError/RuntimeError (the status is the message)."""
        return self._error

    def __repr__(self) -> str:
        names = ", ".join(self.controls)
        return f"Panel(controls=[{names}], figsize={self.figsize}, dpi={self.dpi:g}, title={self.title!r})"

    def _ipython_display_(self) -> None:  # a bare `panel` at the end of a cell shows it
        show(self)

    # -- rendering ------------------------------------------------------------------
    def _check_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate keyword values against the specs; return them snapped to the specs' values."""
        out = {}
        for name, v in values.items():
            if name not in self.controls:
                raise ValueError(f"unknown control {name!r}; this panel has {list(self.controls)}")
            spec = self.controls[name]
            opts = spec._options()
            if isinstance(spec, Toggle):
                v = v.item() if isinstance(v, np.bool_) else v
                if not isinstance(v, bool):
                    raise ValueError(f"control {name!r} is a Toggle: value must be True or False, got {v!r}")
                out[name] = v
                continue
            if isinstance(v, np.generic):
                v = v.item()
            i = _find(opts, v, numeric=isinstance(spec, Slider))
            if i is None:
                raise ValueError(f"control {name!r}: {v!r} is not one of {list(opts)}")
            out[name] = opts[i]
        return out

    def _ensure_setup(self) -> None:
        if not self._is_setup:
            self._state = self._setup_fn(self.figure)
            self._is_setup = True

    def _render(self, values: Mapping[str, Any], *, small: bool = False) -> _Frame:
        """Call update() with every control's value, draw, encode (no widget side effects)."""
        self._ensure_setup()
        try:
            ret = self._update_fn(self._state, **values)
        except (ValueError, RuntimeError) as exc:
            return _Frame(None, _format_error(exc), True)
        if ret is not None and not isinstance(ret, str):
            raise TypeError(f"update() must return a status str or None, got {type(ret).__name__}")
        if not self._laid_out:
            self.figure.tight_layout()  # one-off in matplotlib >= 3.6: no per-draw cost
            self._laid_out = True
        return _Frame(self._encode(small=small), ret or "", False)

    def _encode(self, *, small: bool = False) -> bytes:
        """Draw the canvas and encode its RGBA buffer as PNG with Pillow.

        Measured on the demo panel (720x256 px): canvas.draw ~25 ms; Pillow PNG from
        buffer_rgba at compress_level=1 ~2 ms versus 10-20 ms extra for fig.savefig /
        canvas.print_png (which draw the figure a second time).  ``small`` (static
        frames) quantizes to a 256-colour palette: ~2.5x smaller files, ~1 ms.
        """
        canvas = self.figure.canvas
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4) uint8, a view
        if rgba[..., 3].min() == 255:
            img = _PILImage.fromarray(rgba[..., :3], "RGB")
        else:
            img = _PILImage.fromarray(rgba, "RGBA")
        buf = io.BytesIO()
        if small:
            img.quantize(256, method=_PILImage.Quantize.FASTOCTREE).save(buf, format="png", optimize=True)
        else:
            img.save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def _fallback_png(self) -> bytes:
        """Image to show when the very first update fails: the figure as it stands."""
        self._ensure_setup()
        return self._encode()

    def _apply(self, values: Mapping[str, Any]) -> None:
        """Render the current values and push image + status to the live widgets."""
        self._values.update(values)
        frame = self._render(self._values)
        if frame.png is not None:
            self._png = frame.png
        elif self._png is None:
            self._png = self._fallback_png()
        self._status, self._error = frame.status, frame.error
        if self._box is not None:
            if self._image.value != self._png:
                self._image.value = self._png
            self._status_w.value = _status_html(self._status, self._error)

    def set(self, **values: Any) -> float:
        """Set some controls (others keep their value), redraw, return the seconds it took.

        Moves the live widgets too, if :meth:`widget` was built.  An update() error is
        shown as the status (see :attr:`error`) instead of raised, as in the widget.
        Unknown control names or values not offered by a control raise ValueError.
        """
        t0 = time.perf_counter()
        values = self._check_values(values)
        if self._box is not None:
            self._syncing = True
            try:
                for name, v in values.items():
                    self._control_widgets[name].value = v
            finally:
                self._syncing = False
        self._apply(values)
        return time.perf_counter() - t0

    def render_png(self, **values: Any) -> bytes:
        """PNG bytes of the figure for the current values updated by ``values``.

        Does not move the live widgets or change :attr:`values`.  Unlike the widget, an
        error raised by update() propagates here (so scripts and tests see it).
        """
        merged = {**self._values, **self._check_values(values)}
        self._ensure_setup()
        ret = self._update_fn(self._state, **merged)  # errors propagate on purpose
        if ret is not None and not isinstance(ret, str):
            raise TypeError(f"update() must return a status str or None, got {type(ret).__name__}")
        if not self._laid_out:
            self.figure.tight_layout()
            self._laid_out = True
        return self._encode()

    # -- live widget ----------------------------------------------------------------
    def widget(self):
        """The live ipywidgets panel (a VBox; built once, then the same object is returned).

        Layout: title, controls (+ Reset), the figure as an ``ipywidgets.Image``, and a
        status line.  Needs a running kernel to react to the reader.
        """
        if self._box is not None:
            return self._box
        import ipywidgets as W

        if self._png is None:
            self._apply({})
        rows = []
        if self.title:
            rows.append(W.HTML(f"<b>{html.escape(self.title)}</b>"))
        style = {"description_width": "initial"}
        controls = []
        for name, spec in self.controls.items():
            v = self._values[name]
            if isinstance(spec, Slider):
                w = W.SelectionSlider(
                    options=list(zip(spec.labels, spec.values)),
                    value=v,
                    description=spec.label,
                    continuous_update=spec.continuous_update,
                    style=style,
                    layout=W.Layout(width="340px"),
                )
            elif isinstance(spec, Choice):
                w = W.Dropdown(
                    options=list(zip(spec.labels, spec.options)), value=v, description=spec.label, style=style
                )
            else:
                w = W.Checkbox(value=v, description=spec.label, indent=False, layout=W.Layout(width="auto"))
            w.observe(self._make_observer(name), names="value")
            self._control_widgets[name] = w
            controls.append(w)
        if self.reset:
            self._reset_button = W.Button(description="Reset", tooltip="initial values", layout=W.Layout(width="auto"))
            self._reset_button.on_click(lambda _b: self.set(**self.defaults))
            controls.append(self._reset_button)
        rows.append(W.HBox(controls, layout=W.Layout(flex_flow="row wrap", align_items="center")))
        self._image = W.Image(value=self._png, format="png")
        self._status_w = W.HTML(_status_html(self._status, self._error))
        rows += [self._image, self._status_w]
        self._box = W.VBox(rows)
        return self._box

    def _make_observer(self, name: str) -> Callable[[dict], None]:
        def on_change(change: dict) -> None:
            if self._syncing:
                return
            try:
                self._apply({name: change["new"]})
            except Exception as exc:  # a bug in update(): say so in the panel, then re-raise
                self._status, self._error = f"internal error in update(): {_format_error(exc)}", True
                self._status_w.value = _status_html(self._status, True)
                raise

        return on_change

    # -- static HTML ----------------------------------------------------------------
    def static_html(self, max_frames: int = 200) -> str:
        """Self-contained HTML+JS with pre-rendered frames; works with no kernel and no CDN.

        Frames are palette PNGs (base64) over the grid of control values, or, when the grid
        has more than ``max_frames`` combinations, one control at a time around the
        defaults (see the module docstring).  Identical images are stored once.  Controls:
        ``<input type=range>`` for sliders (over ``static_values`` if given), ``<select>``
        for choices, a checkbox for toggles.  Element ids are unique per call.  Does not
        move the live widgets (the figure is left showing the last frame rendered).
        """
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise ValueError(f"max_frames must be an int >= 1, got {max_frames!r}")
        names = list(self.controls)
        opts = [self.controls[n]._static_options() for n in names]
        default_idx = [opts[k].index(self.defaults[n]) for k, n in enumerate(names)]
        n_grid = math.prod(len(o) for o in opts)
        if n_grid <= max_frames:
            mode = "grid"
            combos = list(itertools.product(*(range(len(o)) for o in opts)))
        else:
            mode = "one-at-a-time"
            combos = [tuple(default_idx)]
            for k, o in enumerate(opts):
                for i in range(len(o)):
                    if i != default_idx[k]:
                        c = list(default_idx)
                        c[k] = i
                        combos.append(tuple(c))
            if len(combos) > max_frames:
                sizes = ", ".join(f"{n}: {len(o)}" for n, o in zip(names, opts))
                raise ValueError(
                    f"static_html: {n_grid} combinations ({sizes}) exceed max_frames={max_frames}, and even "
                    f"one-control-at-a-time needs {len(combos)} frames; pass Slider(..., static_values=[...]) "
                    "with fewer values or raise max_frames"
                )
        images: list[str] = []
        image_index: dict[bytes, int] = {}
        frames: dict[str, list] = {}
        for combo in combos:
            values = {n: opts[k][i] for k, (n, i) in enumerate(zip(names, combo))}
            frame = self._render(values, small=True)
            img = -1
            if frame.png is not None:
                img = image_index.get(frame.png)
                if img is None:
                    img = image_index[frame.png] = len(images)
                    images.append(base64.b64encode(frame.png).decode("ascii"))
            frames[",".join(map(str, combo))] = [img, frame.status, int(frame.error)]
        if not images:  # every frame failed: show the bare figure
            images.append(base64.b64encode(self._fallback_png()).decode("ascii"))
        first = frames[",".join(map(str, default_idx))]
        controls = []
        for k, n in enumerate(names):
            spec = self.controls[n]
            kind = "slider" if isinstance(spec, Slider) else "choice" if isinstance(spec, Choice) else "toggle"
            labels = [spec.labels[spec._options().index(v)] for v in opts[k]] if kind != "toggle" else ["off", "on"]
            controls.append({"name": n, "label": spec.label, "kind": kind, "labels": labels, "default": default_idx[k]})
        data = {"mode": mode, "controls": controls, "images": images, "frames": frames}
        payload = json.dumps(data, separators=(",", ":"))
        digest = _sha8(payload)
        uid = f"bnbook-panel-{next(_panel_ids)}-{digest}"
        return _static_template(uid, self, controls, data, payload, first, mode)


def _sha8(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _check_signature(fn: Callable, what: str, args: tuple, kwargs: dict) -> None:
    """Fail early with a clear TypeError if ``fn`` cannot take the panel's arguments."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust the caller
        return
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        expected = "setup(fig)" if what == "setup" else f"update(state, {', '.join(kwargs)})"
        raise TypeError(f"{what} has signature {what}{sig}, which cannot be called as {expected}: {exc}") from None


def _format_error(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}".strip()
    if len(msg) > _MAX_MESSAGE_CHARS:
        msg = msg[: _MAX_MESSAGE_CHARS - 1] + "\u2026"
    return msg


def _status_html(status: str, error: bool) -> str:
    if not status:
        return ""
    color = _ERROR_COLOR if error else "inherit"
    return f'<span style="color:{color};font-family:monospace;white-space:pre-wrap">{html.escape(status)}</span>'


def _script_json(payload: str) -> str:
    """JSON safe inside <script>: no '</script>', no '<!--'."""
    return payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The controller: one fixed, dependency-free script (ES5, runs in any browser); the
# panel's data lives in a sibling <script type="application/json">.
_STATIC_JS = r"""(function () {
  var uid = "%UID%";
  var root = document.getElementById(uid);
  if (!root) { return; }
  var data = JSON.parse(document.getElementById(uid + "-data").textContent);
  var img = root.querySelector("img.bnbook-frame");
  var status = root.querySelector(".bnbook-status");
  var inputs = [], outputs = [];
  for (var k = 0; k < data.controls.length; k++) {
    inputs.push(root.querySelector('[data-bnbook-control="' + k + '"]'));
    outputs.push(root.querySelector('[data-bnbook-output="' + k + '"]'));
  }
  function read(k) {
    var el = inputs[k];
    return el.type === "checkbox" ? (el.checked ? 1 : 0) : parseInt(el.value, 10);
  }
  function write(k, i) {
    var el = inputs[k];
    if (el.type === "checkbox") { el.checked = (i === 1); } else { el.value = String(i); }
  }
  function render(changed) {
    var idx = [], k;
    for (k = 0; k < inputs.length; k++) { idx.push(read(k)); }
    if (!Object.prototype.hasOwnProperty.call(data.frames, idx.join(","))) {
      // one-at-a-time mode: the other controls return to their defaults
      for (k = 0; k < inputs.length; k++) {
        if (k !== changed) { idx[k] = data.controls[k]["default"]; write(k, idx[k]); }
      }
    }
    var key = idx.join(",");
    var frame = data.frames[key];
    if (!frame) { return; }
    for (k = 0; k < inputs.length; k++) {
      var label = data.controls[k].labels[idx[k]];
      if (outputs[k]) { outputs[k].textContent = label; }
      if (inputs[k].type === "range") { inputs[k].setAttribute("aria-valuetext", label); }
    }
    if (frame[0] >= 0) { img.src = "data:image/png;base64," + data.images[frame[0]]; }
    status.textContent = frame[1];
    status.style.color = frame[2] ? "%ERR%" : "";
    root.setAttribute("data-bnbook-key", key);
  }
  function listen(k) {
    var handler = function () { render(k); };
    inputs[k].addEventListener("input", handler);
    inputs[k].addEventListener("change", handler);
  }
  for (var j = 0; j < inputs.length; j++) { listen(j); }
  var reset = root.querySelector(".bnbook-reset");
  if (reset) {
    reset.addEventListener("click", function () {
      for (var k = 0; k < inputs.length; k++) { write(k, data.controls[k]["default"]); }
      render(-1);
    });
  }
  render(-1);
})();"""


def _static_template(uid, panel: Panel, controls, data, payload, first, mode) -> str:
    esc = html.escape
    parts = [f'<div class="bnbook-panel" id="{uid}" style="font-family:sans-serif;font-size:14px;margin:0.5em 0">']
    if panel.title:
        parts.append(f'<div style="font-weight:bold;margin-bottom:0.3em">{esc(panel.title)}</div>')
    parts.append('<div class="bnbook-controls" style="display:flex;flex-wrap:wrap;gap:0.4em 1.4em;align-items:center">')
    for k, c in enumerate(controls):
        cid = f"{uid}-c{k}"
        d = c["default"]
        if c["kind"] == "slider":
            parts.append(
                f'<span><label for="{cid}">{esc(c["label"])}</label> '
                f'<input type="range" id="{cid}" data-bnbook-control="{k}" min="0" max="{len(c["labels"]) - 1}" '
                f'step="1" value="{d}" style="vertical-align:middle;width:12em"> '
                f'<output data-bnbook-output="{k}" for="{cid}">{esc(c["labels"][d])}</output></span>'
            )
        elif c["kind"] == "choice":
            opts = "".join(
                f'<option value="{i}"{" selected" if i == d else ""}>{esc(lab)}</option>'
                for i, lab in enumerate(c["labels"])
            )
            parts.append(
                f'<span><label for="{cid}">{esc(c["label"])}</label> '
                f'<select id="{cid}" data-bnbook-control="{k}">{opts}</select></span>'
            )
        else:
            parts.append(
                f'<span><input type="checkbox" id="{cid}" data-bnbook-control="{k}"{" checked" if d else ""}> '
                f'<label for="{cid}">{esc(c["label"])}</label></span>'
            )
    if panel.reset:
        parts.append('<button type="button" class="bnbook-reset">Reset</button>')
    parts.append("</div>")
    img_idx = first[0] if first[0] >= 0 else 0
    w, h = (round(s * panel.dpi) for s in panel.figsize)
    alt = esc(panel.title or "interactive figure")
    parts.append(
        f'<img class="bnbook-frame" alt="{alt}" width="{w}" height="{h}" '
        f'style="max-width:100%;height:auto;display:block" src="data:image/png;base64,{data["images"][img_idx]}">'
    )
    color = f"color:{_ERROR_COLOR};" if first[2] else ""
    parts.append(
        f'<div class="bnbook-status" style="{color}font-family:monospace;white-space:pre-wrap;min-height:1.2em">'
        f"{esc(first[1])}</div>"
    )
    note = "Pre-rendered frames (no kernel needed)"
    if mode == "one-at-a-time":
        note += "; one control varies at a time, the others return to their defaults"
    parts.append(f'<div class="bnbook-note" style="font-size:11px;color:#777">{note}.</div>')
    parts.append(f'<script type="application/json" id="{uid}-data">{_script_json(payload)}</script>')
    parts.append("<script>" + _STATIC_JS.replace("%UID%", uid).replace("%ERR%", _ERROR_COLOR) + "</script>")
    parts.append("</div>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- helpers
def show(panel: Panel, *, max_frames: int = 200) -> None:
    """Display ``panel``: the live widget, or its static HTML when ``BNBOOK_STATIC=1``.

    ``make book`` sets ``BNBOOK_STATIC=1`` so the executed notebooks carry kernel-free
    HTML; in JupyterLab the reader gets the live widget.
    """
    if not isinstance(panel, Panel):
        raise TypeError(f"show() expects a bnbook.widgets.Panel, got {type(panel).__name__}")
    from IPython.display import HTML, display

    if os.environ.get("BNBOOK_STATIC") == "1":
        display(HTML(panel.static_html(max_frames=max_frames)))
    else:
        display(panel.widget())


def measure_latency(panel: Panel, n: int = 50, seed: int = 0) -> dict[str, float]:
    """Time ``n`` random control changes, each from value change to finished redraw.

    Each step picks a random control and a different random value and assigns it to the
    live ``ipywidgets`` control (as a reader's click would), so the observer, update(),
    canvas draw, PNG encode and the Image widget update are all inside the timing.  One
    untimed warm-up change comes first; the initial values are restored afterwards.

    Returns
    -------
    dict
        ``{"median_ms", "p95_ms", "iqr_ms", "mean_ms", "max_ms", "n"}`` (milliseconds).
    """
    if not isinstance(panel, Panel):
        raise TypeError(f"measure_latency() expects a bnbook.widgets.Panel, got {type(panel).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    panel.widget()
    rng = random.Random(seed)
    movable = [name for name, spec in panel.controls.items() if len(spec._options()) > 1]
    if not movable:
        raise ValueError("measure_latency: every control has a single value; nothing to change")
    start = panel.values

    def step() -> float:
        name = rng.choice(movable)
        w = panel._control_widgets[name]
        options = [v for v in panel.controls[name]._options() if v != w.value]
        new = rng.choice(options)
        t0 = time.perf_counter()
        w.value = new
        return time.perf_counter() - t0

    try:
        step()  # warm-up (font cache, first tight_layout)
        times = np.array([step() for _ in range(n)]) * 1000.0
    finally:
        panel.set(**start)
    q25, q75 = np.percentile(times, [25, 75])
    return {
        "median_ms": float(np.median(times)),
        "p95_ms": float(np.percentile(times, 95)),
        "iqr_ms": float(q75 - q25),
        "mean_ms": float(times.mean()),
        "max_ms": float(times.max()),
        "n": n,
    }
