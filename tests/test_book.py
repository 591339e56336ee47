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
# sphinx-thebe 0.3.1 (pulled in by jupyter-book 1.0.4) declares its config constant twice on
# every page; thebe itself is never started here, so this one message is the theme's, not ours.
KNOWN_THEME_ERRORS = {"Identifier 'THEBE_JS_URL' has already been declared"}
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """Build the book once for this module; return the html dir (and check sources stay untouched)."""
    out = tmp_path_factory.mktemp("book")
    before = snapshot.take()
    env = dict(os.environ, BNBOOK_QUICK="1", BNBOOK_STATIC="1")
    subprocess.run(["bash", str(ROOT / "scripts" / "vendor_mathjax.sh")], check=True, timeout=600)
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
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


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_figure_cell_shows_an_image_on_the_built_page(book, chapter):
    """The page, not just the notebook: a cell that makes a figure must render a picture (or a static panel)."""
    from bs4 import BeautifulSoup
    from notebook_cells import code_cells, first_line, makes_figure

    html = (book / "notebooks" / f"{chapter}.html").read_text()
    rendered = BeautifulSoup(html, "html.parser").select("div.cell")
    cells = code_cells(ROOT / "notebooks" / f"{chapter}.ipynb")
    assert len(rendered) == len(cells), f"{chapter}: {len(rendered)} rendered cells for {len(cells)} code cells"
    missing = []
    for cell, div in zip(cells, rendered):
        output = div.select_one(".cell_output")
        if makes_figure(cell) and (output is None or not output.select("img, .bnbook-panel")):
            missing.append(first_line(cell))
    assert missing == [], f"{chapter}: figure cells without an image on the page: {missing}"


def _our_errors(page) -> list[str]:
    return [e for e in page.errors if e not in KNOWN_THEME_ERRORS]


def _panels(page) -> list[str]:
    return page.eval_on_selector_all(".bnbook-panel", "els => els.map(e => e.id)")


@pytest.mark.browser
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_static_panels_move_without_a_kernel(book, page, chapter):
    """Every panel on a built page answers its first control with a new pre-rendered frame."""
    from test_static_widgets_browser import move_slider, panel_state

    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((book / "notebooks" / f"{chapter}.html").as_uri())
    uids = _panels(page)
    assert uids, f"no static panel on {chapter}"
    for uid in uids:
        before = panel_state(page, uid)
        assert before["src"].startswith("data:image/png;base64,")
        control = page.locator(f"#{uid} [data-bnbook-control='0']")
        if control.get_attribute("type") == "range":
            last = int(control.get_attribute("max"))
            move_slider(page, uid, 0, 0 if before["key"].split(",")[0] == str(last) else last)
        elif control.evaluate("e => e.tagName") == "SELECT":
            options = control.evaluate("e => Array.from(e.options).map(o => o.value)")
            control.select_option(options[-1] if control.input_value() != options[-1] else options[0])
        else:
            control.click()
        after = panel_state(page, uid)
        assert after["key"] != before["key"], uid
        assert after["src"] != before["src"] or after["status"] != before["status"], uid
    assert _our_errors(page) == []
    external = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert external == [], "the static site must not need the network (CDN scripts, fonts)"


@pytest.mark.browser
@pytest.mark.parametrize("chapter", CHAPTERS[1:])
def test_exercise_solutions_are_hidden_until_opened(book, page, chapter):
    page.goto((book / "notebooks" / f"{chapter}.html").as_uri())
    details = page.locator("details").filter(has_text="Solution")
    assert details.count() >= 3, "each chapter ends with exercises whose solutions are hidden"
    first = details.first
    body = first.locator(":scope > :not(summary)").first
    assert not body.is_visible()
    first.locator("summary").click()
    assert body.is_visible()


@pytest.mark.browser
def test_math_is_typeset_offline_by_the_vendored_mathjax(book, page):
    page.goto((book / "notebooks" / "02_batch_norm_from_scratch.html").as_uri())
    page.wait_for_selector("mjx-container", state="attached", timeout=30_000)
    assert page.locator("mjx-container").count() > 20
    assert _our_errors(page) == []
