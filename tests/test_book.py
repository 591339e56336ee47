"""`make book` end to end: build the static site (quick mode) into a temp dir, then read it in a browser.

The build is the real one (`jupyter-book build . -W -n --keep-going`, warnings are errors), with
BNBOOK_STATIC=1 as `make book` sets it, so the kernel-free slider panels are what a reader gets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import snapshot  # noqa: E402

sys.path.pop(0)

pytestmark = pytest.mark.slow
CHAPTERS = ["00_preface", "01_internal_covariate_shift", "02_batch_norm_from_scratch"]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """Build the book once for this module; return the html dir (and check sources stay untouched)."""
    out = tmp_path_factory.mktemp("book")
    before = snapshot.take()
    env = dict(os.environ, BNBOOK_QUICK="1", BNBOOK_STATIC="1")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    assert snapshot.diff(before, snapshot.take()) == [], "the book build modified the sources"
    return out / "_build" / "html"


def test_index_redirects_to_the_rendered_preface(book):
    index = (book / "index.html").read_text()
    assert "notebooks/00_preface.html" in index
    preface = (book / "notebooks" / "00_preface.html").read_text()
    assert "Preface: how to read this book" in preface
    assert "Where the data comes from" in preface


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_is_executed_without_errors(book, chapter):
    html = (book / "notebooks" / f"{chapter}.html").read_text()
    assert "Traceback (most recent call last)" not in html
    assert 'class="cell_output' in html, "the chapter was not executed"
    assert "image/png" in html or "<img" in html, "no figure in the chapter"
