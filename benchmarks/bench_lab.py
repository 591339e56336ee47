"""Slider latency as a reader feels it: in JupyterLab, in a real (headless) Chromium.

For every live panel of every chapter (``notebooks/*.ipynb``, run with Run > Run All Cells
in a private JupyterLab; kernels in BNBOOK_QUICK=1 mode so that the chapters run in about
2 minutes), every control is moved ``n`` times as a reader would (slider: End and ArrowLeft
alternately on its focused handle: its last two values; dropdown: the next option; checkbox: a click).  Latency is
measured in the page, from the input event's ``timeStamp`` to the MutationObserver callback
that sees the panel image's new ``src`` (``tests/lab_driver.py: timed_move``), so it holds
the browser, the websocket, the kernel's redraw and the new blob image, but no Playwright
round trip.  One untimed warm-up move per control comes first.  Target: median <= 100 ms
per control on 2 cores.

Needs /usr/bin/chromium; without it the benchmark fails (``make bench`` reports it and goes on).
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import lab_driver as lab  # noqa: E402 (after the sys.path insert)

sys.path.pop(0)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "control"


def _rows(chapter: str, control: dict, ms: list[float], missed: int) -> list[dict]:
    a = np.array(ms)
    q25, q75 = np.percentile(a, [25, 75])
    name = f"lab.{chapter}.{_slug(control['label'])}"
    notes = f"{control['kind']}, n={len(ms)}" + (f", {missed} moves without a new image" if missed else "")
    return [
        {
            "name": f"{name}.median",
            "metric": "JupyterLab slider latency median",
            "value": round(float(np.median(a)), 1),
            "unit": "ms",
            "spread": round(float(q75 - q25), 1),
            "notes": notes + ", spread=IQR; input event -> new img src",
        },
        {
            "name": f"{name}.p95",
            "metric": "JupyterLab slider latency p95",
            "value": round(float(np.percentile(a, 95)), 1),
            "unit": "ms",
            "spread": None,
            "notes": notes,
        },
    ]


def run(quick: bool) -> list[dict]:
    """Rows {name, metric, value, unit, spread, notes}: median and p95 per chapter and control."""
    from playwright.sync_api import sync_playwright

    n = 6 if quick else 30
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bnbook-bench-lab-") as home, sync_playwright() as p:
        server = lab.LabServer(Path(home), env={"BNBOOK_QUICK": "1"}).start()
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            server.login(context)
            for path in sorted(lab.NOTEBOOKS.glob("*.ipynb")):
                t0 = time.perf_counter()
                page = lab.open_notebook(context, server, path.name)
                state = lab.run_all_cells(page, timeout=900)
                run_s = time.perf_counter() - t0
                chapter = path.stem
                rows.append(
                    {
                        "name": f"lab.{chapter}.run_all",
                        "metric": "open + Run All Cells",
                        "value": round(run_s, 1),
                        "unit": "s",
                        "spread": None,
                        "notes": "BNBOOK_QUICK=1, until idle kernel and every count",
                    }
                )
                for index in lab.panel_cells(state):
                    panel = lab.panel_locator(page, index)
                    for control in lab.panel_controls(panel):
                        key = (lambda i: "End" if i % 2 == 0 else "ArrowLeft") if control["kind"] == "slider" else None
                        lab.timed_move(panel, control, 0, key=key and key(0))  # warm-up
                        ms, missed = [], 0
                        for step in range(1, n + 1):
                            _, t = lab.timed_move(panel, control, step, timeout=10, key=key and key(step))
                            if t is None:
                                missed += 1
                            else:
                                ms.append(t)
                        if not ms:
                            raise RuntimeError(f"{chapter}: {control['label']!r} never brought a new image")
                        rows += _rows(chapter, control, ms, missed)
                        lab.timed_move(panel, None, timeout=10)  # Reset before the next control
                page.close()
                server.shutdown_kernels()
        finally:
            browser.close()
            server.shutdown()
    return rows


if __name__ == "__main__":  # pragma: no cover
    for row in run(quick=True):
        print(row)
