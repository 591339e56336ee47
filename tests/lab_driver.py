"""Drive a real JupyterLab in headless Chromium: a private server, "Run All Cells", the live panels.

Shared by ``tests/test_jupyterlab_browser.py`` (does every chapter run, show its figures and
answer its sliders?) and ``benchmarks/bench_lab.py`` (how fast do the panels answer?).

:class:`LabServer` starts ``jupyter lab`` from this venv on 127.0.0.1, a free port and a
random token, serving a *copy* of the notebooks, with private Jupyter config, data, runtime,
settings and workspace directories (nothing of the user's is read or written).  The page
helpers take a Playwright page: :func:`open_notebook`, :func:`run_all_cells`,
:func:`cell_report`, :func:`panel_cells`, :func:`panel_controls` and :func:`move_control`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ (also imported from benchmarks/)
from notebook_cells import WIDGET_MIME, makes_figure  # noqa: E402

sys.path.pop(0)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
IMAGE_MIMES = ("image/png", "image/svg+xml", "image/jpeg")

# JupyterLab user settings for the private server: render every cell (no windowing, so the
# DOM holds all outputs) and no news / update checks (no network).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound (SO_REUSEADDR: TIME_WAIT leftovers do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def jupyter_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a private Jupyter under ``home`` (config, data, runtime, settings, workspaces)."""
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "workspaces",
        "IPYTHONDIR": home / "ipython",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for name, settings in LAB_SETTINGS.items():
        path = dirs["JUPYTERLAB_SETTINGS_DIR"] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "BNBOOK_STATIC"))}
    env.update({k: str(v) for k, v in dirs.items()})
    # the kernels import this checkout's bnbook, whatever the venv's editable install points at
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


@dataclass
class LabServer:
    """A private ``jupyter lab`` serving a temporary copy of ``notebooks/``.

    Use as a context manager (or call :meth:`start` / :meth:`shutdown`).  ``env`` adds
    environment variables for the server and its kernels, e.g. ``{"BNBOOK_QUICK": "1"}``.
    """

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    source: Path = NOTEBOOKS
    port: int = 0
    token: str = ""
    proc: subprocess.Popen | None = None

    @property
    def root_dir(self) -> Path:
        return self.home / "notebooks"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        lab = Path(sys.executable).with_name("jupyter-lab")
        cmd = [
            str(lab),
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: kernel status, cell models
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd

    def start(self, timeout: float = 90.0) -> LabServer:
        shutil.copytree(self.source, self.root_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        self.port = self.port or free_port()
        self.token = self.token or secrets.token_hex(24)
        self.log = self.home / "jupyter-lab.log"
        env = jupyter_env(self.home / "jupyter", **self.env)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.api("/api/status")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.shutdown()
        raise TimeoutError(f"jupyter lab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def api(self, path: str, method: str = "GET", *, token: str | None = None) -> tuple[int, object]:
        """``(status, parsed JSON or None)`` of a REST call; ``token=""`` sends none."""
        token = self.token if token is None else token
        headers = {"Authorization": f"token {token}"} if token else {}
        req = urllib.request.Request(
            self.url + path, method=method, headers=headers, data=b"" if method == "POST" else None
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = r.read()
                return r.status, json.loads(body) if body else None
        except urllib.error.HTTPError as e:
            return e.code, None

    def login(self, context) -> None:
        """Give a Playwright browser context the session cookie (through ``/?token=``)."""
        page = context.new_page()
        page.goto(f"{self.url}/lab?token={self.token}", wait_until="domcontentloaded")
        page.close()

    def shutdown_kernels(self) -> None:
        _, sessions = self.api("/api/sessions")
        for s in sessions or []:
            self.api(f"/api/sessions/{s['id']}", "DELETE")

    def shutdown(self, timeout: float = 30.0) -> None:
        """POST /api/shutdown; terminate (then kill) the process group if it does not exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.api("/api/shutdown", "POST")
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.shutdown()


# ----------------------------------------------------------------------------- the page
def open_notebook(context, server: LabServer, name: str, timeout: float = 120.0):
    """A new page with ``name`` open in JupyterLab and its kernel started (idle)."""
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(f"{server.url}/lab/tree/{name}?reset", wait_until="domcontentloaded")
    page.wait_for_function(
        """name => {
            const app = window.jupyterapp;
            const w = app && app.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return w && w.context && w.context.path.endsWith(name) && w.content.widgets.length > 0
                && k && k.status === 'idle' && w.sessionContext.isReady;
        }""",
        arg=name,
        timeout=timeout * 1000,
    )
    return page


_STATE_JS = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
    const cells = w.content.widgets.map((cell, index) => {
        const m = cell.model;
        if (m.type !== 'code') return null;
        const outputs = [];
        for (let i = 0; i < m.outputs.length; i++) {
            const o = m.outputs.get(i);
            outputs.push({type: o.type, mimes: Object.keys(o.data || {}), name: (o.toJSON().name || '')});
        }
        const node = cell.node;
        const imgs = Array.from(node.querySelectorAll('.jp-OutputArea-output img'));
        return {
            index,
            first_line: m.sharedModel.getSource().split('\\n').find(l => l.trim() && !l.startsWith('# NBVAL')) || '',
            source: m.sharedModel.getSource(),
            count: m.executionCount,
            outputs,
            rendered_mimes: Array.from(node.querySelectorAll('.jp-OutputArea-output')).map(
                e => e.getAttribute('data-mime-type') || ''),
            stderr_text: Array.from(node.querySelectorAll(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')).map(e => e.textContent),
            images: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
            widget_images: node.querySelectorAll('.jupyter-widgets img, .widget-image').length,
        };
    }).filter(c => c !== null);
    return {kernel: kernel ? kernel.status : 'none', cells};
}"""


def notebook_state(page) -> dict:
    """``{kernel: status, cells: [...]}``: per code cell its index, source, execution count and outputs."""
    return page.evaluate(_STATE_JS)


def _has_error(cell: dict) -> bool:
    return any(o["type"] == "error" for o in cell["outputs"]) or any(
        "Traceback (most recent call last)" in t for t in cell["stderr_text"]
    )


def run_all_cells(page, timeout: float = 600.0) -> dict:
    """Run > Run All Cells from the menu bar; wait for an idle kernel and every execution count.

    Returns the final :func:`notebook_state`.  Stops waiting early (and returns) once a cell
    shows an error and the kernel has been idle for 3 s: JupyterLab then skips the rest.
    """
    page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
    item = page.locator(
        '.lm-Menu-item[data-command="runmenu:run-all"], .lm-Menu-item[data-command="notebook:run-all-cells"]'
    )
    item.wait_for(state="visible", timeout=10_000)
    item.click()
    deadline = time.monotonic() + timeout
    idle_since = None
    while True:
        state = notebook_state(page)
        cells = state["cells"]
        idle = state["kernel"] == "idle"
        if idle and all(c["count"] is not None for c in cells):
            # the outputs of the last cell arrive before its idle status; let renderers finish
            page.wait_for_timeout(500)
            return notebook_state(page)
        if idle and any(_has_error(c) for c in cells):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 3:
                return state
        else:
            idle_since = None
        if time.monotonic() > deadline:
            pending = [c["index"] for c in cells if c["count"] is None]
            raise TimeoutError(
                f"notebook still running after {timeout:.0f} s (kernel {state['kernel']}, "
                f"cells without execution count: {pending})"
            )
        page.wait_for_timeout(250)


def is_figure_cell(cell: dict, stored_mimes: set[str] | None = None) -> bool:
    """Whether a code cell must show a figure: :func:`notebook_cells.makes_figure` says so from its
    source, or its stored outputs (``stored_mimes``) hold an image or a widget view."""
    if makes_figure({"source": cell["source"]}):
        return True
    return bool(stored_mimes and stored_mimes & {*IMAGE_MIMES, WIDGET_MIME})


def stored_output_mimes(path: Path) -> list[set[str]]:
    """Per code cell of the notebook file, the MIME types of its stored outputs."""
    nb = json.loads(path.read_text())
    return [
        {m for o in c.get("outputs", []) for m in o.get("data", {})} for c in nb["cells"] if c["cell_type"] == "code"
    ]


def describe(cell: dict) -> str:
    return f"cell {cell['index']} ({cell['first_line'].strip()[:80]!r})"


# ----------------------------------------------------------------------------- live panels
def panel_cells(state: dict) -> list[int]:
    """Notebook indices of the cells whose output holds a live panel (an ipywidgets Image)."""
    return [c["index"] for c in state["cells"] if c["widget_images"] > 0]


def panel_locator(page, index: int):
    """The output area of cell ``index`` (its widget views)."""
    return (
        page.locator(".jp-Notebook .jp-Cell")
        .nth(index)
        .locator(".jp-OutputArea-output")
        .filter(has=page.locator(".widget-image, .jupyter-widgets img"))
        .first
    )


_CONTROLS_JS = """root => {
    const out = [];
    root.querySelectorAll('.widget-slider, .widget-dropdown, .widget-checkbox').forEach((el, k) => {
        el.setAttribute('data-bnbook-lab', String(k));
        const label = (el.querySelector('.widget-label') || el).textContent.trim();
        if (el.classList.contains('widget-slider')) {
            const h = el.querySelector('.noUi-handle');
            out.push({k, kind: 'slider', label, now: +h.getAttribute('aria-valuenow'),
                      min: +h.getAttribute('aria-valuemin'), max: +h.getAttribute('aria-valuemax')});
        } else if (el.classList.contains('widget-dropdown')) {
            const s = el.querySelector('select');
            out.push({k, kind: 'dropdown', label, value: s.value, options: Array.from(s.options).map(o => o.value)});
        } else {
            const text = (el.querySelector('.widget-label-basic') || el).textContent.replace(/\u200b/g, '').trim();
            out.push({k, kind: 'checkbox', label: text, checked: el.querySelector('input').checked});
        }
    });
    return out;
}"""


def panel_controls(panel) -> list[dict]:
    """The panel's sliders, dropdowns and checkboxes: ``{k, kind, label, ...current value}``."""
    return panel.evaluate(_CONTROLS_JS)


def image_src(panel) -> str:
    return panel.locator(".widget-image, .jupyter-widgets img").first.get_attribute("src") or ""


def move_control(panel, control: dict, step: int = 0, key: str | None = None) -> str:
    """Move ``control`` as a reader would; return what was done (e.g. ``"End"``).

    Slider: focus its handle and press End, then (``step`` odd) Home: the far ends, as the
    smallest step may change nothing visible (eps = 1e-5 -> 1e-3 beside a variance of 2);
    a slider that starts at its right end goes Home first.  Dropdown: select the next
    option.  Checkbox: click.  ``control`` is an entry of :func:`panel_controls` (taken
    before the first move).  ``key`` presses that key on a slider instead.
    """
    el = panel.locator(f"[data-bnbook-lab='{control['k']}']")
    if control["kind"] == "slider":
        keys = ("End", "Home") if control["now"] < control["max"] else ("Home", "End")
        key = key or keys[step % 2]
        h = el.locator(".noUi-handle")
        h.focus()
        h.press(key)
        return key
    if control["kind"] == "dropdown":
        s = el.locator("select")
        options = s.evaluate("s => Array.from(s.options).map(o => o.value)")
        new = options[(options.index(s.input_value()) + 1) % len(options)]
        s.select_option(new)
        return f"select {new!r}"
    el.locator("input[type=checkbox]").click()
    return "click"


ERROR_RGB = "rgb(176, 0, 32)"  # bnbook.widgets._ERROR_COLOR, as the browser reports it


def panel_error(panel) -> str | None:
    """The panel's status line when it reports an error (red text; the image is kept), else None."""
    return panel.evaluate(
        """(root, rgb) => {
            const bad = Array.from(root.querySelectorAll('.widget-html-content span'))
                .find(s => getComputedStyle(s).color === rgb);
            return bad ? bad.textContent : null;
        }""",
        ERROR_RGB,
    )


def reset_panel(panel) -> str:
    """Click the panel's Reset button (every control back to its initial value)."""
    panel.locator("button", has_text="Reset").first.click()
    return "Reset"


_ARM_JS = """root => {
    if (!root.__bnbook) {
        const img = root.querySelector('.widget-image, .jupyter-widgets img');
        const st = root.__bnbook = {t0: null, t1: null, src: img.getAttribute('src')};
        const start = e => { if (st.t0 === null) st.t0 = e.timeStamp; };  // the reader's first input event
        for (const type of ['keydown', 'pointerdown', 'mousedown', 'input', 'change']) {
            root.addEventListener(type, start, true);
        }
        new MutationObserver(() => {
            const src = img.getAttribute('src');
            if (st.t0 !== null && st.t1 === null && src !== st.src) { st.t1 = performance.now(); st.src = src; }
        }).observe(img, {attributes: true, attributeFilter: ['src']});
    }
    root.__bnbook.t0 = null;
    root.__bnbook.t1 = null;
}"""


def timed_move(
    panel, control: dict | None, step: int = 0, timeout: float = 30.0, key: str | None = None
) -> tuple[str, float | None]:
    """Move ``control`` (None: click Reset) and wait for a new image ``src``; return ``(action, latency in ms)``.

    The latency is measured in the page: from the input event (keydown / pointerdown /
    change, its ``event.timeStamp``) to the MutationObserver callback that sees the image's
    new ``src`` (``performance.now()``), so Playwright's round trips are not counted.  The
    latency is None when no new image arrived within ``timeout`` seconds.
    """
    panel.evaluate(_ARM_JS)
    action = reset_panel(panel) if control is None else move_control(panel, control, step, key)
    try:
        panel.page.wait_for_function(
            "root => root.__bnbook.t1 !== null", arg=panel.element_handle(), timeout=timeout * 1000, polling=20
        )
    except Exception as exc:  # playwright's TimeoutError
        if "Timeout" not in type(exc).__name__:
            raise
        return action, None
    t0, t1 = panel.evaluate("root => [root.__bnbook.t0, root.__bnbook.t1]")
    return action, t1 - t0
