"""Kernel-free panels for the static book: pre-rendered frames and a small vanilla-JS controller.

:func:`static_html` renders the panel over a grid of control values and embeds every frame
(palette PNGs, base64) with the controller in one self-contained HTML snippet: no kernel, no
CDN, no external script.  The HTML skeleton, one snippet per kind of control and the
controller are real files under ``bnbook/widgets/templates/`` (``panel.html``, ``panel.js``,
``slider.html``, ...), filled in with :class:`string.Template`; the panel's data lives in a
``<script type="application/json">`` block beside the controller.

Frames: if the full product of the controls' values has at most ``max_frames``
combinations every combination is rendered ("grid" mode).  Otherwise the panel falls
back to "one-at-a-time" mode: the defaults plus every value of each control with all
other controls at their defaults; moving one control in the page then returns the
others to their defaults (a note in the panel says so).  If even that exceeds
``max_frames`` a ValueError asks for fewer values (``Slider(..., static_values=...)``).

Introduced with the preface's panel (``notebooks/00_preface.ipynb``); ``make book`` sets
``BNBOOK_STATIC=1`` so that :func:`bnbook.widgets.show` emits this HTML.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import itertools
import json
import math
import string
from importlib import resources
from typing import TYPE_CHECKING, Any

from .controls import kind
from .panel import _ERROR_COLOR, check_count

if TYPE_CHECKING:
    from .panel import Panel

__all__ = ["static_html"]

_panel_ids = itertools.count()  # per-process counter: unique, deterministic element ids


@functools.cache
def _template(name: str) -> string.Template:
    """``bnbook/widgets/templates/<name>`` as a :class:`string.Template` (read once, from the installed package)."""
    text = (resources.files(__package__) / "templates" / name).read_text(encoding="utf-8")
    return string.Template(text.rstrip("\n"))


def _frame_combos(opts: list[tuple], default_idx: list[int], max_frames: int) -> tuple[str, list[tuple[int, ...]]]:
    """The mode and the index combinations to pre-render (one index per control)."""
    n_grid = math.prod(len(o) for o in opts)
    if n_grid <= max_frames:
        return "grid", list(itertools.product(*(range(len(o)) for o in opts)))
    combos = [tuple(default_idx)]
    for k, o in enumerate(opts):
        for i in range(len(o)):
            if i != default_idx[k]:
                c = list(default_idx)
                c[k] = i
                combos.append(tuple(c))
    return "one-at-a-time", combos


def static_html(panel: Panel, max_frames: int = 200) -> str:
    """Self-contained HTML+JS of ``panel`` with pre-rendered frames (see :meth:`Panel.static_html`)."""
    max_frames = check_count("max_frames", max_frames)
    names = list(panel.controls)
    opts = [panel.controls[n]._static_options() for n in names]
    default_idx = [opts[k].index(panel.defaults[n]) for k, n in enumerate(names)]
    mode, combos = _frame_combos(opts, default_idx, max_frames)
    if len(combos) > max_frames:
        n_grid = math.prod(len(o) for o in opts)
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
        frame = panel._render(values, small=True)
        img = -1
        if frame.png is not None:
            img = image_index.get(frame.png)
            if img is None:
                img = image_index[frame.png] = len(images)
                images.append(base64.b64encode(frame.png).decode("ascii"))
        frames[",".join(map(str, combo))] = [img, frame.status, int(frame.error)]
    if not images:  # every frame failed: show the bare figure
        images.append(base64.b64encode(panel._fallback_png()).decode("ascii"))
    first = frames[",".join(map(str, default_idx))]
    controls = []
    for k, n in enumerate(names):
        spec = panel.controls[n]
        k_kind = kind(spec)
        labels = [spec.labels[spec._options().index(v)] for v in opts[k]] if k_kind != "toggle" else ["off", "on"]
        controls.append({"name": n, "label": spec.label, "kind": k_kind, "labels": labels, "default": default_idx[k]})
    data = {"mode": mode, "controls": controls, "images": images, "frames": frames}
    payload = json.dumps(data, separators=(",", ":"))
    uid = f"bnbook-panel-{next(_panel_ids)}-{hashlib.sha1(payload.encode()).hexdigest()[:8]}"
    return _render_page(uid, panel, controls, images, payload, first, mode)


def _control_html(uid: str, k: int, control: dict[str, Any]) -> str:
    """One control's ``<span>``: a range input, a select or a checkbox, with its label."""
    esc = html.escape
    d, cid, label = control["default"], f"{uid}-c{k}", esc(control["label"])
    if control["kind"] == "slider":
        return _template("slider.html").substitute(
            id=cid, k=k, label=label, max=len(control["labels"]) - 1, value=d, value_label=esc(control["labels"][d])
        )
    if control["kind"] == "choice":
        options = "".join(
            _template("option.html").substitute(i=i, selected=" selected" if i == d else "", label=esc(lab))
            for i, lab in enumerate(control["labels"])
        )
        return _template("choice.html").substitute(id=cid, k=k, label=label, options=options)
    return _template("toggle.html").substitute(id=cid, k=k, label=label, checked=" checked" if d else "")


def _render_page(uid: str, panel: Panel, controls: list[dict], images: list[str], payload: str, first, mode) -> str:
    """Fill in ``panel.html``: title, controls, the default frame, status, note, data and controller."""
    esc = html.escape
    note = "Pre-rendered frames (no kernel needed)"
    if mode == "one-at-a-time":
        note += "; one control varies at a time, the others return to their defaults"
    width, height = (round(s * panel.dpi) for s in panel.figsize)
    return _template("panel.html").substitute(
        uid=uid,
        title=_template("title.html").substitute(title=esc(panel.title)) if panel.title else "",
        controls="\n".join(_control_html(uid, k, c) for k, c in enumerate(controls)),
        reset=_template("reset.html").substitute() if panel.reset else "",
        alt=esc(panel.title or "interactive figure"),
        width=width,
        height=height,
        image=images[max(first[0], 0)],  # -1: the default frame failed
        status_color=f"color:{_ERROR_COLOR};" if first[2] else "",
        status=esc(first[1]),
        note=note,
        data=_script_json(payload),
        script=_template("panel.js").substitute(uid=uid, error_color=_ERROR_COLOR),
    )


def _script_json(payload: str) -> str:
    """JSON safe inside <script>: no '</script>', no '<!--'."""
    return payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
