"""What a chapter's cells are, read from their source: shared by the notebook, book and JupyterLab tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# A cell makes a figure when it displays a matplotlib Figure, calls a bnbook.plots function or shows a panel.
_FIGURE = re.compile(r"display\(\s*fig|^fig\s*$|\bplot_\w+\(|\bshow\(\s*\w*panel|\bshow\(make_panel|\bshow\(\w+\.make_panel", re.M)


def code_cells(path: Path) -> list[dict]:
    """The code cells of a notebook file, in order."""
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def makes_figure(cell: dict) -> bool:
    """True if the cell's code displays a figure or a panel (its output must then show an image)."""
    code = "\n".join(line for line in source(cell).splitlines() if not line.lstrip().startswith("#"))
    return bool(_FIGURE.search(code))


def shows_panel(cell: dict) -> bool:
    return bool(re.search(r"\bshow\(", source(cell))) and makes_figure(cell)


def first_line(cell: dict) -> str:
    lines = [line for line in source(cell).splitlines() if line.strip() and not line.startswith("# NBVAL")]
    return lines[0][:80] if lines else "<empty>"
