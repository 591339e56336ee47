"""`make book`: build time (cold, then with a warm execution cache), page sizes, first render in Chromium.

The build is `make book`'s own: ``scripts/vendor_mathjax.sh``, ``scripts/book_cache.py`` and
``BNBOOK_STATIC=1 jupyter-book build . -W -n --keep-going``, in FULL mode (BNBOOK_QUICK
unset; ``--quick`` sets BNBOOK_QUICK=1, a smoke test), into a temporary ``--path-output``
so that ``_build/`` is not touched.  Three builds:

- ``cold``: empty build directory (every notebook executed);
- ``cached``: the execution cache kept, ``html/``, ``doctrees`` and ``jupyter_execute`` removed
  (every page rendered again from the cached outputs);
- ``warm``: nothing removed (`make book` run a second time with nothing changed).

Then, per chapter page: its size (the HTML plus the images it links under ``_images/``;
theme assets shared by all pages are not counted; target <= 5 MB), and the time to first
render in headless Chromium from the Performance API (first contentful paint and the load
event, both from navigation start; median of 5 fresh page loads).

Takes several minutes (the cold full build trains the chapters' networks).  Skip it with
``benchmarks/run.py --skip book``, or run it alone with ``--only book``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOADS = 5


def _chapters() -> list[str]:
    return [p.stem for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]


def build(out: Path, *, quick: bool) -> float:
    """One `make book` build into ``out/_build``; seconds (cache check + jupyter-book)."""
    env = {k: v for k, v in os.environ.items() if k != "BNBOOK_QUICK"}
    env["BNBOOK_STATIC"] = "1"
    if quick:
        env["BNBOOK_QUICK"] = "1"
    bin_dir = Path(sys.executable).parent
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "book_cache.py"), str(out / "_build")], env=env, check=True)
    result = subprocess.run(
        [str(bin_dir / "jupyter-book"), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return seconds


def page_size(html: Path) -> tuple[int, int]:
    """``(bytes of the HTML, bytes of the HTML plus the _images/ files it links)``."""
    text = html.read_text(errors="replace")
    images = set(re.findall(r'src="([^"]*_images/[^"]+)"', text))
    extra = sum((html.parent / src).resolve().stat().st_size for src in images if (html.parent / src).exists())
    size = html.stat().st_size
    return size, size + extra


def first_render(html: Path, loads: int) -> dict[str, list[float]]:
    """Per fresh load: first contentful paint and load event end (ms after navigation start)."""
    from playwright.sync_api import sync_playwright

    fcp, load = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(loads):
                context = browser.new_context()
                page = context.new_page()
                page.goto(html.as_uri(), wait_until="load")
                timing = page.evaluate(
                    """() => new Promise(resolve => setTimeout(() => {
                        const nav = performance.getEntriesByType('navigation')[0];
                        const paint = performance.getEntriesByName('first-contentful-paint')[0];
                        resolve({load: nav.loadEventEnd - nav.startTime, fcp: paint ? paint.startTime : null});
                    }, 50))"""
                )
                load.append(timing["load"])
                if timing["fcp"] is not None:
                    fcp.append(timing["fcp"])
                context.close()
        finally:
            browser.close()
    return {"fcp": fcp, "load": load}


def _row(name: str, metric: str, value: float, unit: str, notes: str, spread=None) -> dict:
    return {
        "name": name,
        "metric": metric,
        "value": round(value, 3 if unit == "MB" else 1),
        "unit": unit,
        "spread": spread,
        "notes": notes,
    }


def run(quick: bool) -> list[dict]:
    """Rows {name, metric, value, unit, spread, notes}: build times, page sizes, first render."""
    subprocess.run(["bash", str(ROOT / "scripts" / "vendor_mathjax.sh")], check=True, timeout=600)
    mode = "BNBOOK_QUICK=1" if quick else "full mode"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bnbook-bench-book-") as tmp:
        out = Path(tmp)
        cold = build(out, quick=quick)
        for d in ("html", ".doctrees", "jupyter_execute"):
            shutil.rmtree(out / "_build" / d, ignore_errors=True)
        cached = build(out, quick=quick)
        warm = build(out, quick=quick)
        rows += [
            _row("book.build.cold", "make book, empty build dir", cold, "s", f"{mode}; every notebook executed"),
            _row(
                "book.build.cached",
                "make book, warm execution cache",
                cached,
                "s",
                f"{mode}; .jupyter_cache kept, html/doctrees removed: every page rendered again",
            ),
            _row("book.build.warm", "make book again, nothing changed", warm, "s", f"{mode}; nothing removed"),
        ]
        html_dir = out / "_build" / "html" / "notebooks"
        for chapter in _chapters():
            html = html_dir / f"{chapter}.html"
            size, total = page_size(html)
            rows.append(
                _row(
                    f"book.{chapter}.page_size",
                    "built page size",
                    total / 1e6,
                    "MB",
                    f"{mode}; HTML {size / 1e6:.2f} MB + its _images/ files; target <= 5 MB",
                )
            )
            t = first_render(html, 2 if quick else LOADS)
            for key, metric in (("fcp", "first contentful paint"), ("load", "load event end")):
                if not t[key]:
                    continue
                a = np.array(t[key])
                rows.append(
                    _row(
                        f"book.{chapter}.{key}",
                        f"Chromium {metric} (from navigation start)",
                        float(np.median(a)),
                        "ms",
                        f"median of {len(a)} fresh loads from file://; spread=min-max",
                        spread=f"{a.min():.0f}-{a.max():.0f}",
                    )
                )
    return rows


if __name__ == "__main__":  # pragma: no cover
    for row in run(quick="--quick" in sys.argv):
        print(row)
