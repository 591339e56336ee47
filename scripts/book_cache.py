"""Invalidate Jupyter Book's execution cache when the library or the run settings change.

jupyter-cache keys a notebook's outputs on the notebook's own code only, so after an edit to
``bnbook/`` (or a change of BNBOOK_QUICK / BNBOOK_DATA) it would serve stale outputs: every number
in the book must come from the code beside it.  This script hashes every file under ``bnbook/``
(subpackages and the widget templates included) and those variables, and deletes
``<build>/.jupyter_cache`` when the hash differs from the last build's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bnbook.settings import OUTPUT_KEYS as ENV_KEYS  # noqa: E402  (the one list of BNBOOK_* variables)

sys.path.pop(0)


def fingerprint() -> str:
    """Hash of the library sources and the environment variables that change outputs."""
    h = hashlib.sha256()
    library = ROOT / "bnbook"
    for path in sorted(library.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(library).as_posix().encode())
        h.update(path.read_bytes())
    for key in ENV_KEYS:
        h.update(f"{key}={os.environ.get(key, '')}".encode())
    return h.hexdigest()


def main(build_dir: str) -> int:
    build = Path(build_dir)
    stamp = build / ".bnbook-fingerprint"
    new = fingerprint()
    if stamp.exists() and stamp.read_text() == new:
        print("book_cache: library unchanged, reusing executed notebooks")
        return 0
    cache = build / ".jupyter_cache"
    if cache.exists():
        print("book_cache: bnbook/ or BNBOOK_* changed, clearing the execution cache")
        shutil.rmtree(cache)
    build.mkdir(parents=True, exist_ok=True)
    stamp.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "_build"))
