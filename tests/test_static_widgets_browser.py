"""The kernel-free panels in a real browser: Debian's headless Chromium driven by Playwright.

The browser fixtures (``chromium``: one browser per session; ``page``: a fresh page whose
console errors and uncaught exceptions collect in ``page.errors``) live in
``tests/conftest.py``; they skip without /usr/bin/chromium, except with CI=true, where
they fail.  The helpers below (``open_html``, ``panel_uid``, ``panel_state``,
``expected_src``) work on any page holding bnbook static panels, e.g. the built book's
chapters: ``page.goto(path.as_uri())`` then ``panel_state(page, uid)``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from bnbook.widgets import Choice, Panel, Slider, Toggle

pytestmark = pytest.mark.browser

ERROR_RGB = "rgb(176, 0, 32)"  # bnbook.widgets._ERROR_COLOR, as the browser reports it


# ----------------------------------------------------------------------------- reusable helpers
def open_html(page, tmp_path: Path, *snippets: str, name: str = "panels.html") -> None:
    """Write the snippets into one HTML document and open it through a file:// URL."""
    path = tmp_path / name
    body = "\n<hr>\n".join(snippets)
    path.write_text(
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>t</title></head><body>\n{body}\n</body></html>'
    )
    page.goto(path.as_uri())


def panel_uid(html: str) -> str:
    """The element id of the (first) panel in a static_html() snippet."""
    return re.search(r'class="bnbook-panel" id="([^"]+)"', html).group(1)


def panel_data(html: str) -> dict:
    """The frames and controls embedded in a static_html() snippet."""
    uid = panel_uid(html)
    block = re.search(rf'<script type="application/json" id="{uid}-data">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))


def expected_src(data: dict, key: str) -> str:
    """The <img> src of frame ``key`` ("i,j,k": one index per control)."""
    return "data:image/png;base64," + data["images"][data["frames"][key][0]]


def panel_state(page, uid: str) -> dict:
    """What the reader sees in panel ``uid``: frame key, image src, status text and colour, labels."""
    return page.evaluate(
        """uid => {
            const root = document.getElementById(uid);
            const status = root.querySelector('.bnbook-status');
            return {
                key: root.getAttribute('data-bnbook-key'),
                src: root.querySelector('img.bnbook-frame').getAttribute('src'),
                status: status.textContent,
                color: getComputedStyle(status).color,
                outputs: Array.from(root.querySelectorAll('output')).map(o => o.textContent),
            };
        }""",
        uid,
    )


def move_slider(page, uid: str, k: int, index: int) -> None:
    """Set range input #k to ``index`` as a drag would: value change + 'input' event."""
    page.locator(f"#{uid} [data-bnbook-control='{k}']").fill(str(index))


# ----------------------------------------------------------------------------- demo panels
def demo_panel(offset: float = 0.0, **kwargs) -> Panel:
    """eps on a log scale, a choice and a toggle; eps = 1 fails like a bad update would."""

    def setup(fig):
        ax = fig.add_subplot()
        (line,) = ax.plot([], [])
        ax.set(xlim=(-3, 3), ylim=(-0.1, 1.5))
        return {"ax": ax, "line": line}

    def update(state, eps, shape, flip):
        if eps == 1.0:
            raise ValueError("eps = 1 swamps the variance")
        x = np.linspace(-3, 3, 200)
        y = np.exp(-(x**2) / (1 + eps * 1e4)) if shape == "gauss" else np.clip(1 - abs(x) / 2, 0, None)
        state["line"].set_data(x, (y[::-1] if flip else y) + offset)
        state["ax"].set_title(f"eps={eps:g} {shape} {flip}")
        return f"eps = {eps:g}, {shape}, flip={flip}"

    controls = {
        "eps": Slider("eps", np.logspace(-5, 0, 6), 1e-3),
        "shape": Choice("shape", ["gauss", "tent"], "gauss"),
        "flip": Toggle("flip", False),
    }
    return Panel(controls, setup, update, figsize=(3, 2), dpi=40, title="demo", **kwargs)


@pytest.fixture(scope="module")
def two_panels() -> tuple[str, str]:
    return demo_panel().static_html(), demo_panel(offset=0.2).static_html()


# ----------------------------------------------------------------------------- tests
def test_slider_choice_and_toggle_swap_frames(page, tmp_path, two_panels):
    html = two_panels[0]
    data, uid = panel_data(html), panel_uid(html)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    open_html(page, tmp_path, html)
    state = panel_state(page, uid)
    assert state["key"] == "2,0,0" and state["src"] == expected_src(data, "2,0,0")
    assert state["status"] == "eps = 0.001, gauss, flip=False" and state["outputs"] == ["0.001"]

    move_slider(page, uid, 0, 4)
    state = panel_state(page, uid)
    assert state["key"] == "4,0,0" and state["src"] == expected_src(data, "4,0,0")
    assert state["status"] == "eps = 0.1, gauss, flip=False" and state["outputs"] == ["0.1"]
    assert page.locator(f"#{uid} input[type=range]").get_attribute("aria-valuetext") == "0.1"

    page.locator(f"#{uid} [data-bnbook-control='0']").focus()
    page.keyboard.press("ArrowLeft")  # keyboard users move one value at a time
    assert panel_state(page, uid)["key"] == "3,0,0"

    page.locator(f"#{uid} select").select_option(label="tent")
    page.locator(f"#{uid} input[type=checkbox]").check()
    state = panel_state(page, uid)
    assert state["key"] == "3,1,1" and state["src"] == expected_src(data, "3,1,1")
    assert state["status"] == "eps = 0.01, tent, flip=True"

    page.locator(f"#{uid} .bnbook-reset").click()
    assert panel_state(page, uid)["key"] == "2,0,0"
    assert page.errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests


def test_error_frame_shows_message_and_keeps_the_image(page, tmp_path, two_panels):
    html = two_panels[0]
    data, uid = panel_data(html), panel_uid(html)
    open_html(page, tmp_path, html)
    move_slider(page, uid, 0, 4)
    move_slider(page, uid, 0, 5)  # eps = 1: update() raised
    state = panel_state(page, uid)
    assert state["key"] == "5,0,0" and state["src"] == expected_src(data, "4,0,0")
    assert state["status"] == "ValueError: eps = 1 swamps the variance" and state["color"] == ERROR_RGB
    move_slider(page, uid, 0, 0)
    state = panel_state(page, uid)
    assert state["src"] == expected_src(data, "0,0,0") and state["color"] != ERROR_RGB
    assert page.errors == []


def test_two_panels_on_one_page_stay_independent(page, tmp_path, two_panels):
    (html_a, html_b) = two_panels
    uid_a, uid_b = panel_uid(html_a), panel_uid(html_b)
    assert uid_a != uid_b
    open_html(page, tmp_path, html_a, html_b)
    before_b = panel_state(page, uid_b)
    move_slider(page, uid_a, 0, 1)
    page.locator(f"#{uid_a} input[type=checkbox]").check()
    assert panel_state(page, uid_a)["key"] == "1,0,1"
    assert panel_state(page, uid_b) == before_b
    move_slider(page, uid_b, 0, 3)
    state_a, state_b = panel_state(page, uid_a), panel_state(page, uid_b)
    assert state_a["key"] == "1,0,1" and state_b["key"] == "3,0,0"
    assert state_b["src"] == expected_src(panel_data(html_b), "3,0,0") != state_a["src"]
    assert page.errors == []


def test_one_at_a_time_mode_returns_other_controls_to_defaults(page, tmp_path):
    html = demo_panel().static_html(max_frames=10)  # 24 combinations > 10
    data, uid = panel_data(html), panel_uid(html)
    assert data["mode"] == "one-at-a-time"
    open_html(page, tmp_path, html)
    move_slider(page, uid, 0, 0)
    assert panel_state(page, uid)["key"] == "0,0,0"
    page.locator(f"#{uid} select").select_option(label="tent")
    state = panel_state(page, uid)
    assert state["key"] == "2,1,0" and state["src"] == expected_src(data, "2,1,0")
    assert page.locator(f"#{uid} [data-bnbook-control='0']").input_value() == "2"
    assert state["outputs"] == ["0.001"]
    assert page.errors == []
