"""Record, then check, that a command left the sources untouched.

``snapshot.py save FILE`` stores ``git status --porcelain`` and a hash of every file under
``notebooks/``; ``snapshot.py check FILE`` fails if either changed since.  ``make test`` wraps
the whole test run in these two calls (a reader's notebook edits must never be overwritten).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def take() -> dict:
    """Return the git status lines and a hash per file under notebooks/."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        status = ["<not a git checkout>"]
    hashes = {
        str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((ROOT / "notebooks").rglob("*"))
        if p.is_file()
    }
    return {"git_status": sorted(status), "notebooks": hashes}


def diff(before: dict, after: dict) -> list[str]:
    """Human-readable differences between two snapshots (empty if none)."""
    problems = []
    for line in sorted(set(after["git_status"]) ^ set(before["git_status"])):
        problems.append(f"git status changed: {line}")
    for name in sorted(set(before["notebooks"]) | set(after["notebooks"])):
        if before["notebooks"].get(name) != after["notebooks"].get(name):
            problems.append(f"modified, added or removed: {name}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"save", "check"}:
        print("usage: snapshot.py save|check FILE", file=sys.stderr)
        return 2
    path = Path(argv[1])
    if argv[0] == "save":
        path.write_text(json.dumps(take(), indent=1))
        return 0
    problems = diff(json.loads(path.read_text()), take())
    path.unlink()
    if problems:
        print("The run changed files it must not touch:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("snapshot: sources and notebooks/ untouched")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
