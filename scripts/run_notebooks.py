"""Execute chapters in FULL mode, in place: what `make notebooks` runs to refresh the stored outputs.

The stored notebooks are what a reader sees before running anything (GitHub, JupyterLab), so they
hold the full-mode run: BNBOOK_QUICK and BNBOOK_STATIC are removed from the kernel's environment.
Usage: ``python scripts/run_notebooks.py [notebooks/NN_name.ipynb ...]`` (default: every chapter).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 3600  # seconds per cell: full mode trains real networks


def run(path: Path) -> float:
    """Execute ``path`` top to bottom in full mode and write it back; return the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # nbformat >= 4.5 requires an id on every cell
        cell.setdefault("id", uuid.uuid4().hex[:8])
    env = {k: v for k, v in os.environ.items() if k not in ("BNBOOK_QUICK", "BNBOOK_STATIC")}
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # nbclient's kernel inherits this process's environment
    try:
        t0 = time.perf_counter()
        NotebookClient(
            nb, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()
        seconds = time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(old)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        print(f"run_notebooks: {path.name} ...", flush=True)
        print(f"run_notebooks: {path.name} executed in full mode in {run(path):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
