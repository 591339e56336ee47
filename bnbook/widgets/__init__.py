"""Slider panels: live in JupyterLab, pre-rendered and kernel-free in the static book.

Introduced in the preface (``notebooks/00_preface.ipynb``, whose panel is built by
:func:`bnbook.preface.make_panel`) and used by every chapter that lets the reader move
momentum, eps, batch size or learning rate and watch activation distributions change;
chapter 1 (``notebooks/01_internal_covariate_shift.ipynb``) adds :func:`measure_latency`.

Why not ``ipywidgets.interact``?  It re-creates a pyplot figure and re-encodes it through
the inline backend on every slider step, and in the static book a slider does nothing
because there is no kernel.  In the committed run of ``benchmarks/bench_widgets.py``
(``benchmarks/results.json``) that pattern's median latency was 161 ms against 28 ms for a
:class:`Panel` drawing the same two histograms, 5.8x faster.  A :class:`Panel` instead

* creates ONE :class:`matplotlib.figure.Figure` on a private Agg canvas (no pyplot, no
  inline backend, no global state) and calls ``setup(fig)`` once;
* on each change calls ``update(state, **values)``, which mutates the existing artists,
  then draws the canvas and encodes a PNG with Pillow straight from the RGBA buffer
  into an ``ipywidgets.Image``;
* shows ``ValueError``/``RuntimeError`` raised by ``update`` as a red message under the
  figure and keeps the last good image (e.g. PyTorch's batch-size-1 BatchNorm error);
* for the book (``BNBOOK_STATIC=1``, see :func:`show`) pre-renders frames over the grid
  of control values and embeds them, with a small vanilla-JS controller, in one
  self-contained HTML snippet: no kernel, no CDN, no external script.

One job per module:

=============  =====================================================================
``controls``   :class:`Slider`, :class:`Choice`, :class:`Toggle`: the control specs
``panel``      :class:`Panel` (values, checks, PNG rendering, status) and :func:`show`
``live``       the ipywidgets binding, the only bnbook module that imports ipywidgets
               (on the first :meth:`Panel.widget` call)
``static``     the kernel-free HTML+JS frames, from ``templates/panel.html`` and ``panel.js``
``latency``    :func:`measure_latency`
=============  =====================================================================
"""

from .controls import Choice, Slider, Toggle
from .controls import Control as Control  # the type of a control spec, as before the split
from .latency import measure_latency
from .panel import _ERROR_COLOR as _ERROR_COLOR  # the tests compare colours with it
from .panel import _MAX_MESSAGE_CHARS as _MAX_MESSAGE_CHARS
from .panel import DrawnError, Panel, show

__all__ = [
    "Slider",
    "Choice",
    "Toggle",
    "Panel",
    "DrawnError",
    "show",
    "measure_latency",
]
