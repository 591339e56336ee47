"""The :class:`Panel` core: control values, checks, and the figure rendered to PNG on one reused Agg canvas.

No ipywidgets here: :meth:`Panel.widget` builds the live view from :mod:`bnbook.widgets.live`
and :meth:`Panel.static_html` the kernel-free page from :mod:`bnbook.widgets.static`, both
imported on first use.  :func:`show` picks one of the two.  Introduced with the preface's
panel (``notebooks/00_preface.ipynb``).
"""

from __future__ import annotations

import base64
import inspect
import io
import keyword
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as _PILImage

from bnbook import settings
from bnbook._validate import check_positive_int, check_real

from .controls import Choice, Control, Slider, Toggle, snap

__all__ = ["Panel", "show"]

_ERROR_COLOR = "#b00020"  # status text of a failed update(), live and static
_MAX_MESSAGE_CHARS = 400


def _as_value_error(check: Callable[..., Any], name: str, value: Any, **bounds: Any) -> Any:
    """``check(name, value, **bounds)`` from bnbook._validate, a wrong type raised as ValueError too.

    Panel's size and count arguments have always raised ValueError for every bad value.
    """
    try:
        return check(name, value, **bounds)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def check_count(name: str, value: Any) -> int:
    """An int >= 1 (``max_frames``, ``n``), else ValueError naming ``name``."""
    return _as_value_error(check_positive_int, name, value)


class DrawnError(ValueError):
    """Raise from ``update()`` after drawing a figure that matches a failing setting.

    A plain ``ValueError``/``RuntimeError`` from ``update()`` leaves the panel showing its last
    good image beside the error.  Raising ``DrawnError(...) from exc`` instead says that the
    figure now shows the failing setting itself (e.g. empty axes saying why): the panel shows
    *that* figure, live and in the static frames, with the original error as the status.
    """


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
        if not isinstance(figsize, (tuple, list)) or len(figsize) != 2:
            raise ValueError(f"figsize must be (width, height) in inches, each in (0, 100), got {figsize!r}")
        inches = {"low": 0, "high": 100, "low_open": True, "high_open": True}
        figsize = tuple(
            _as_value_error(check_real, f"figsize[{i}] (inches)", s, **inches) for i, s in enumerate(figsize)
        )
        dpi = _as_value_error(check_real, "dpi", dpi, low=10, high=600)
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        if layout not in ("tight", "constrained", None):
            raise ValueError(f"layout must be 'tight', 'constrained' or None, got {layout!r}")
        self.controls: dict[str, Control] = dict(controls)
        _check_signature(update, "update", (None,), {n: s.value for n, s in self.controls.items()})
        _check_signature(setup, "setup", (None,), {})
        self._setup_fn = setup
        self._update_fn = update
        self.figsize: tuple[float, float] = figsize
        self.dpi: float = dpi
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
        self._live = None  # the bnbook.widgets.live.LiveView, built by widget()

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
            out[name] = snap(name, self.controls[name], v)
        return out

    def _ensure_setup(self) -> None:
        if not self._is_setup:
            self._state = self._setup_fn(self.figure)
            self._is_setup = True

    def _after_update(self, ret: Any) -> str:
        """Check update()'s return value and lay the figure out once; return the status text."""
        if ret is not None and not isinstance(ret, str):
            raise TypeError(f"update() must return a status str or None, got {type(ret).__name__}")
        if not self._laid_out:
            self.figure.tight_layout()  # one-off in matplotlib >= 3.6: no per-draw cost
            self._laid_out = True
        return ret or ""

    def _render(self, values: Mapping[str, Any], *, small: bool = False) -> _Frame:
        """Call update() with every control's value, draw, encode (no widget side effects)."""
        self._ensure_setup()
        try:
            ret = self._update_fn(self._state, **values)
        except DrawnError as exc:  # the figure matches the failing setting: show it
            return _Frame(self._encode(small=small), _format_error(exc.__cause__ or exc), True)
        except (ValueError, RuntimeError) as exc:
            return _Frame(None, _format_error(exc), True)
        status = self._after_update(ret)
        return _Frame(self._encode(small=small), status, False)

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
        """Render the current values, keep image + status, and push them to the live view."""
        self._values.update(values)
        frame = self._render(self._values)
        if frame.png is not None:
            self._png = frame.png
        elif self._png is None:
            self._png = self._fallback_png()
        self._status, self._error = frame.status, frame.error
        if self._live is not None:
            self._live.refresh()

    def set(self, **values: Any) -> float:
        """Set some controls (others keep their value), redraw, return the seconds it took.

        Moves the live widgets too, if :meth:`widget` was built.  An update() error is
        shown as the status (see :attr:`error`) instead of raised, as in the widget.
        Unknown control names or values not offered by a control raise ValueError.
        """
        t0 = time.perf_counter()
        values = self._check_values(values)
        if self._live is not None:
            self._live.move(values)  # the widgets follow without rendering once each
        self._apply(values)
        return time.perf_counter() - t0

    def render_png(self, **values: Any) -> bytes:
        """PNG bytes of the figure for the current values updated by ``values``.

        Does not move the live widgets or change :attr:`values`.  Unlike the widget, an
        error raised by update() propagates here (so scripts and tests see it).
        """
        merged = {**self._values, **self._check_values(values)}
        self._ensure_setup()
        self._after_update(self._update_fn(self._state, **merged))  # errors propagate on purpose
        return self._encode()

    # -- the two views ----------------------------------------------------------------
    def widget(self):
        """The live ipywidgets panel (a VBox; built once, then the same object is returned).

        Layout: title, controls (+ Reset), the figure as an ``ipywidgets.Image``, and a
        status line.  Needs a running kernel to react to the reader.  Built by
        :class:`bnbook.widgets.live.LiveView`, the one module that imports ipywidgets.
        """
        if self._live is None:
            from .live import LiveView

            if self._png is None:
                self._apply({})
            self._live = LiveView(self)
        return self._live.box

    def static_html(self, max_frames: int = 200) -> str:
        """Self-contained HTML+JS with pre-rendered frames; works with no kernel and no CDN.

        Frames are palette PNGs (base64) over the grid of control values, or, when the grid
        has more than ``max_frames`` combinations, one control at a time around the
        defaults (see :mod:`bnbook.widgets`).  Identical images are stored once.  Controls:
        ``<input type=range>`` for sliders (over ``static_values`` if given), ``<select>``
        for choices, a checkbox for toggles.  Element ids are unique per call.  Does not
        move the live widgets (the figure is left showing the last frame rendered).
        """
        from .static import static_html

        return static_html(self, max_frames=max_frames)

    # -- the live widgets' parts (tests and measure_latency reach them here) ------------
    @property
    def _control_widgets(self) -> dict[str, Any]:
        return self._live.controls if self._live is not None else {}

    @property
    def _image(self):
        return self._live.image

    @property
    def _status_w(self):
        return self._live.status

    @property
    def _reset_button(self):
        if self._live is None or self._live.reset_button is None:
            raise AttributeError("_reset_button: no live widget with a Reset button was built")
        return self._live.reset_button


def show(panel: Panel, *, max_frames: int = 200) -> None:
    """Display ``panel``: the live widget, or its static HTML when ``BNBOOK_STATIC=1``.

    ``make book`` sets ``BNBOOK_STATIC=1`` (read through :func:`bnbook.settings.static`) so the
    executed notebooks carry kernel-free HTML; in JupyterLab the reader gets the live widget.
    The widget's output also carries a PNG of the panel at its default settings: a stored
    notebook opened without a kernel (GitHub, JupyterLab before running) shows that picture
    instead of the widget's text repr, while a live frontend renders the widget itself.
    """
    if not isinstance(panel, Panel):
        raise TypeError(f"show() expects a bnbook.widgets.Panel, got {type(panel).__name__}")
    from IPython.display import HTML, display

    if settings.static():
        display(HTML(panel.static_html(max_frames=max_frames)))
        return
    bundle = dict(panel.widget()._repr_mimebundle_())
    bundle["image/png"] = base64.b64encode(panel.render_png(**panel.defaults)).decode("ascii")
    bundle["text/plain"] = f"{panel.title or 'Panel'} (a live panel: run the cell to move its controls)"
    display(bundle, raw=True)


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
