"""Every chapter in a real JupyterLab, driven by headless Chromium: run all cells, see the figures, move the sliders.

A private ``jupyter lab`` (``tests/lab_driver.py``: 127.0.0.1, a free port, a random token,
its own Jupyter config/data/runtime/settings/workspace directories) serves a temporary copy
of ``notebooks/``; the kernels run with BNBOOK_QUICK=1.  For every ``notebooks/*.ipynb``
the page runs Run > Run All Cells and waits for an idle kernel and every execution count;
then no cell may show an error, every figure cell must show an image, and every control
of every live panel (ipywidgets Image output) must bring a new image: sliders pressed to
their End and Home (then Reset), dropdowns to the next option, checkboxes clicked.  A far
end that the panel refuses (batch size 1 in training) may show an error status instead,
if one step back draws again.  Last, the server shuts down through its API, frees its
port, and the original notebooks are unchanged.
"""

from __future__ import annotations

import hashlib

import pytest
from lab_driver import (
    NOTEBOOKS,
    WIDGET_MIME,
    LabServer,
    describe,
    is_figure_cell,
    open_notebook,
    panel_cells,
    panel_controls,
    panel_error,
    panel_locator,
    port_is_free,
    run_all_cells,
    stored_output_mimes,
    timed_move,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHAPTERS = sorted(NOTEBOOKS.glob("*.ipynb"))
RUN_TIMEOUT = 900  # s per notebook; quick mode needs 15-80 s on 2 busy cores
MOVE_TIMEOUT = 60  # s for one panel redraw (about 0.1 s when the machine is idle)


def _hashes() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(NOTEBOOKS.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory):
    """``(server, browser context)``; afterwards: shut down, port free, notebooks/ untouched."""
    before = _hashes()
    server = LabServer(tmp_path_factory.mktemp("lab"), env={"BNBOOK_QUICK": "1"}).start()
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        server.login(context)
        yield server, context
    finally:
        context.close()
        server.shutdown()
    assert server.proc.returncode is not None
    assert port_is_free(server.port), f"port {server.port} still taken after the shutdown"
    assert _hashes() == before, "the JupyterLab session wrote into notebooks/ (it must work on a copy)"


@pytest.fixture(scope="module", params=CHAPTERS, ids=lambda p: p.stem)
def executed(request, lab):
    """``(path, page, state)``: the chapter open in JupyterLab after Run All Cells."""
    server, context = lab
    path = request.param
    page = open_notebook(context, server, path.name)
    state = run_all_cells(page, timeout=RUN_TIMEOUT)
    yield path, page, state
    page.close()
    server.shutdown_kernels()


def test_every_cell_runs_without_errors_and_every_figure_shows(executed):
    path, page, state = executed
    stored = stored_output_mimes(path)
    code_cells = state["cells"]
    assert len(code_cells) == len(stored), "JupyterLab shows a different number of code cells than the file holds"
    problems = []
    for cell, mimes in zip(code_cells, stored):
        if cell["count"] is None:
            problems.append(f"{describe(cell)} did not run")
        if any(o["type"] == "error" for o in cell["outputs"]) or any(
            "Traceback (most recent call last)" in t for t in cell["stderr_text"]
        ):
            problems.append(f"{describe(cell)} shows an error: {' '.join(cell['stderr_text'])[:500]}")
        if is_figure_cell(cell, mimes) and not (cell["images"] or cell["widget_images"]):
            shown = [m for o in cell["outputs"] for m in o["mimes"]] or ["nothing"]
            problems.append(f"{describe(cell)} is a figure cell but shows no image (its outputs: {shown})")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)
    assert page.errors == [], f"uncaught JavaScript errors: {page.errors}"


def test_every_control_of_every_live_panel_brings_a_new_image(executed):
    path, page, state = executed
    panels = panel_cells(state)
    expected = sum(WIDGET_MIME in mimes for mimes in stored_output_mimes(path))
    assert len(panels) >= expected, f"{path.name}: {expected} stored widget outputs, {len(panels)} live panels"
    problems = []
    for index in panels:
        panel = panel_locator(page, index)
        controls = panel_controls(panel)
        assert controls, f"{path.name}: the panel of cell {index} has no control"
        for control in controls:
            # slider: to one far end and to the other; dropdown: the next option twice; checkbox: click twice
            moves = [(control, 0), (control, 1)]
            if control["kind"] == "slider" and control["min"] < control["now"] < control["max"]:
                moves.append((None, 0))  # Reset: back from the left end to the initial value
            for target, step in moves:
                action, ms = timed_move(panel, target, step, timeout=MOVE_TIMEOUT)
                error = panel_error(panel) if ms is None and action in ("Home", "End") else None
                if error:  # a far end the panel refuses (batch size 1 in training): it says why, keeps
                    # the image, and one step back in must draw again
                    back = "ArrowRight" if action == "Home" else "ArrowLeft"
                    action, ms = timed_move(panel, target, key=back, timeout=MOVE_TIMEOUT)
                    action = f"{back} after the error {error[:80]!r}"
                if ms is None:
                    text = " | ".join(panel.inner_text().split("\n"))[-300:]
                    problems.append(
                        f"cell {index}, {control['kind']} {control['label']!r}: {action} brought no new image "
                        f"within {MOVE_TIMEOUT} s (panel text: {text!r})"
                    )
            if control["kind"] != "slider":  # back to the defaults, so that every control is tried from them
                timed_move(panel, None, 0, timeout=15)  # no new image if already there: fine
    assert not problems, f"{path.name}:\n" + "\n".join(problems)
    assert page.errors == [], f"uncaught JavaScript errors: {page.errors}"


def test_a_private_server_needs_its_token_and_frees_its_port_on_shutdown(tmp_path):
    server = LabServer(tmp_path).start()
    try:
        assert server.api("/api/status")[0] == 200
        assert server.api("/api/status", token="")[0] == 403
        assert server.api("/api/contents", token="wrong")[0] == 403
        listing = server.api("/api/contents")[1]
        assert sorted(c["name"] for c in listing["content"] if c["type"] == "notebook") == [p.name for p in CHAPTERS]
        assert not port_is_free(server.port)
    finally:
        server.shutdown()
    assert server.proc.returncode == 0, server.log_tail()
    assert "Shutting down on /api/shutdown request" in server.log_tail(20_000)
    assert port_is_free(server.port)
