"""One module or package per notebook: each chapter's experiments and panels.

``bnbook.chapters.<slug>`` holds the code of ``notebooks/NN_<slug>.ipynb``. A chapter may import
the library (``bnbook.*``); the library never imports ``bnbook.chapters`` (a test enforces
both rules), and a helper that a second chapter needs moves down into the library.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

__all__ = ["panel_factories"]


def panel_factories() -> dict[str, Callable]:
    """``{chapter slug: make_panel}`` for every chapter module that has a slider panel, by slug."""
    out = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if callable(getattr(module, "make_panel", None)):
            out[info.name] = module.make_panel
    return out
