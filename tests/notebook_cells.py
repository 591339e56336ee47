"""What a chapter's cells are, read from their source: shared by the notebook, book and JupyterLab tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# A cell makes a figure when it builds or displays a matplotlib Figure, calls a plot_* function or shows a
# panel (definitions, imports and comments do not count).
_FIGURE = re.compile(r"display\(\s*fig|^fig\s*$|(?<![\w.])(show|Figure)\(|\bplot_\w*\(", re.M)
_NOT_CODE = ("def ", "#", "from ", "import ")


def code_cells(path: Path) -> list[dict]:
    """The code cells of a notebook file, in order."""
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def makes_figure(cell: dict) -> bool:
    """True if the cell's code displays a figure or a panel (its output must then show an image)."""
    code = "\n".join(line for line in source(cell).splitlines() if not line.lstrip().startswith(_NOT_CODE))
    return bool(_FIGURE.search(code))


def shows_panel(cell: dict) -> bool:
    return bool(re.search(r"\bshow\(", source(cell))) and makes_figure(cell)


def first_line(cell: dict) -> str:
    lines = [line for line in source(cell).splitlines() if line.strip() and not line.startswith("# NBVAL")]
    return lines[0][:80] if lines else "<empty>"
