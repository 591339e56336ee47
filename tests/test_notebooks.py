"""The stored notebooks are what a reader sees before running anything: the full-mode run, with pictures."""

from __future__ import annotations

import base64
import json

import pytest
from notebook_cells import CHAPTERS, WIDGET_MIME, code_cells, first_line, makes_figure, shows_panel, source


def _outputs_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append("".join(out.get("text", "")))
        parts.append("".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _has_image(cell: dict) -> bool:
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        png = data.get("image/png")
        if png and base64.b64decode("".join(png))[:8] == b"\x89PNG\r\n\x1a\n":
            return True
        if "<img" in "".join(data.get("text/html", "")):
            return True
    return False


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_stored_notebook_holds_the_full_mode_run(path):
    cells = code_cells(path)
    assert all(c.get("execution_count") for c in cells), f"{path.name}: not every cell was executed"
    text = "\n".join(_outputs_text(c) for c in cells)
    assert "full mode" in text, f"{path.name}: no 'full mode' marker; regenerate with `make notebooks`"
    assert "quick mode" not in text, f"{path.name} holds quick-mode outputs; regenerate with `make notebooks`"
    errors = [first_line(c) for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert errors == [], f"{path.name}: cells with errors: {errors}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_stored_figure_cell_shows_an_image(path):
    cells = [c for c in code_cells(path) if makes_figure(c)]
    assert cells, f"{path.name}: no figure cell found"
    missing = [first_line(c) for c in cells if not _has_image(c)]
    assert missing == [], f"{path.name}: figure cells whose stored output has no image: {missing}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_panel_outputs_carry_a_picture_beside_the_widget(path):
    """Opened without a kernel (GitHub, JupyterLab), a widget is only its text repr unless a PNG rides along."""
    for cell in code_cells(path):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_MIME in data:
                assert "image/png" in data, f"{path.name}: widget output without a picture: {first_line(cell)}"
                assert "NBVAL_IGNORE_OUTPUT" in source(cell), first_line(cell)
        if shows_panel(cell):
            assert _has_image(cell), f"{path.name}: panel cell without a picture: {first_line(cell)}"


def test_the_figure_detector_sees_the_usual_ways_of_showing_a_figure():
    def cell(code):
        return {"cell_type": "code", "source": code}

    assert makes_figure(cell("fig = Figure()\nax = fig.subplots()\ndisplay(fig)"))
    assert makes_figure(cell("fig = plot_history(h)\nfig"))
    assert makes_figure(cell("show(make_panel())")) and shows_panel(cell("show(cs.make_panel(quick=QUICK))"))
    assert makes_figure(cell("panel = make_panel()\nshow(panel)"))
    assert not makes_figure(cell("print(1)\n# display(fig) in a comment does not count"))
    assert not makes_figure(cell(json.dumps("x")))
