"""The one place that reads the ``BNBOOK_*`` environment variables.

Every chapter and library module asks this module instead of ``os.environ``, so the names, their
defaults and their meaning are written down once (the README's table repeats them):

=====================  ==================================================================
``BNBOOK_QUICK=1``     fewer epochs and smaller grids (what CI runs)
``BNBOOK_DATA``        dataset for ``bnbook.data.load("auto")``; empty means ``auto``
``BNBOOK_DATA_DIR``    where datasets are cached (default ``~/.cache/bnbook``)
``BNBOOK_STATIC=1``    panels render as kernel-free HTML+JS frames (``make book`` sets it)
=====================  ==================================================================

Values are read at call time, never at import, so a test's ``monkeypatch.setenv`` takes effect.
"""

from __future__ import annotations

import os

__all__ = ["ENV_KEYS", "OUTPUT_KEYS", "quick", "dataset", "data_dir", "static", "bench_threads"]

#: The variables that change what an executed notebook shows (the book's cache hashes them).
OUTPUT_KEYS = ("BNBOOK_QUICK", "BNBOOK_DATA", "BNBOOK_DATA_DIR", "BNBOOK_STATIC")
#: Every variable bnbook reads.
ENV_KEYS = OUTPUT_KEYS + ("BNBOOK_BENCH_THREADS",)


def quick() -> bool:
    """``BNBOOK_QUICK=1``: the chapters shrink their epochs and grids."""
    return os.environ.get("BNBOOK_QUICK") == "1"


def dataset() -> str | None:
    """``BNBOOK_DATA`` if set and not empty, else None (meaning ``"auto"``)."""
    return os.environ.get("BNBOOK_DATA") or None


def data_dir() -> str:
    """``BNBOOK_DATA_DIR``, else ``~/.cache/bnbook`` (user-expanded)."""
    return os.path.expanduser(os.environ.get("BNBOOK_DATA_DIR") or os.path.join("~", ".cache", "bnbook"))


def static() -> bool:
    """``BNBOOK_STATIC=1``: :func:`bnbook.widgets.show` emits pre-rendered HTML frames."""
    return os.environ.get("BNBOOK_STATIC") == "1"


def bench_threads() -> int:
    """``BNBOOK_BENCH_THREADS``: torch threads for the benchmarks (default 1; 0 means torch's default).

    >>> import os; os.environ.pop("BNBOOK_BENCH_THREADS", None) and None
    >>> bench_threads()
    1
    """
    value = os.environ.get("BNBOOK_BENCH_THREADS", "1")
    if not value.isdigit():
        raise ValueError(f"BNBOOK_BENCH_THREADS must be an int >= 0, got {value!r}")
    return int(value)
