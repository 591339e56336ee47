"""The live view of a :class:`~bnbook.widgets.Panel` in JupyterLab: its ipywidgets binding.

The only module of bnbook that imports ipywidgets; :meth:`Panel.widget` imports it on first
use, so ``import bnbook.widgets`` and the static book never load ipywidgets.  Each control
becomes a widget whose observer calls ``Panel._apply``; the panel pushes every new image and
status back through :meth:`LiveView.refresh`.  Introduced with the preface's panel
(``notebooks/00_preface.ipynb``).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from .controls import Choice, Slider
from .panel import _ERROR_COLOR, _format_error

if TYPE_CHECKING:
    from .panel import Panel

__all__ = ["LiveView"]


class LiveView:
    """The ipywidgets of one panel: a VBox of title, controls (+ Reset), ``Image`` and status.

    Attributes
    ----------
    box : ipywidgets.VBox
        What :meth:`Panel.widget` returns and Jupyter displays.
    controls : dict[str, ipywidgets.Widget]
        One ``SelectionSlider``, ``Dropdown`` or ``Checkbox`` per control name.
    image : ipywidgets.Image
        The figure as PNG.
    status : ipywidgets.HTML
        The status line (red for an update() error).
    reset_button : ipywidgets.Button or None
        The "Reset" button, None with ``Panel(..., reset=False)``.
    """

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self._syncing = False  # set() moves the widgets: their observers must not render again
        rows = []
        if panel.title:
            rows.append(W.HTML(f"<b>{html.escape(panel.title)}</b>"))
        style = {"description_width": "initial"}
        self.controls: dict[str, Any] = {}
        for name, spec in panel.controls.items():
            v = panel.values[name]
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
            self.controls[name] = w
        row = list(self.controls.values())
        self.reset_button = None
        if panel.reset:
            self.reset_button = W.Button(description="Reset", tooltip="initial values", layout=W.Layout(width="auto"))
            self.reset_button.on_click(lambda _b: panel.set(**panel.defaults))
            row.append(self.reset_button)
        rows.append(W.HBox(row, layout=W.Layout(flex_flow="row wrap", align_items="center")))
        self.image = W.Image(value=panel._png, format="png")
        self.status = W.HTML(_status_html(panel.status, panel.error))
        rows += [self.image, self.status]
        self.box = W.VBox(rows)

    def refresh(self) -> None:
        """Show the panel's last good image and its status."""
        if self.image.value != self.panel._png:
            self.image.value = self.panel._png
        self.status.value = _status_html(self.panel.status, self.panel.error)

    def move(self, values: Mapping[str, Any]) -> None:
        """Move the control widgets to ``values`` (checked by the panel) without rendering."""
        self._syncing = True
        try:
            for name, v in values.items():
                self.controls[name].value = v
        finally:
            self._syncing = False

    def _make_observer(self, name: str) -> Callable[[dict], None]:
        def on_change(change: dict) -> None:
            if self._syncing:
                return
            try:
                self.panel._apply({name: change["new"]})
            except Exception as exc:  # a bug in update(): say so in the panel, then re-raise
                self.panel._status, self.panel._error = f"internal error in update(): {_format_error(exc)}", True
                self.status.value = _status_html(self.panel.status, True)
                raise

        return on_change


def _status_html(status: str, error: bool) -> str:
    if not status:
        return ""
    color = _ERROR_COLOR if error else "inherit"
    return f'<span style="color:{color};font-family:monospace;white-space:pre-wrap">{html.escape(status)}</span>'
