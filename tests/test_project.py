"""Project-level contracts: one source of truth for versions, CI wiring, notebooks' conventions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _requirement_pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        name, sep, version = line.partition("==")
        assert sep, f"unpinned requirement {line!r}: pin exact versions in both files"
        pins[name.strip().lower()] = version.strip()
    return pins


def test_environment_yml_and_pyproject_pin_the_same_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject = _requirement_pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = _requirement_pins(pip_section)
    assert conda == pyproject
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11" and project["requires-python"] == ">=3.11,<3.12"


def test_pinned_versions_are_the_installed_ones():
    from importlib.metadata import version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _requirement_pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    for name, pinned in pins.items():
        assert version(name).split("+")[0] == pinned, name


def test_jupyter_book_is_1x():
    import jupyter_book

    assert jupyter_book.__version__.startswith("1."), "jupyter-book 2.x ignores _config.yml"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme


def test_makefile_has_the_documented_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("setup", "book", "test", "lab", "bench"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert "--cov-fail-under=90" in makefile


def test_toc_lists_every_notebook_and_only_existing_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert (ROOT / f"{f}.ipynb").exists(), f
    assert sorted(files) == sorted(f"notebooks/{p.stem}" for p in NOTEBOOKS)


def _code_cells(path: Path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(path):
    cells = _code_cells(path)
    first = "".join(cells[0]["source"])
    assert 'os.environ.get("BNBOOK_QUICK") == "1"' in first, "first code cell must hold the parameters"
    nb = json.loads(path.read_text())
    first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "".join(first_md["source"]).startswith("# "), "one H1 title first"
    for cell in cells:
        src = "".join(cell["source"])
        outputs = cell.get("outputs", [])
        if any(WIDGET_MIME in o.get("data", {}) for o in outputs):
            assert "NBVAL_IGNORE_OUTPUT" in src, f"widget cell without NBVAL_IGNORE_OUTPUT:\n{src}"
        assert not any(o.get("output_type") == "error" for o in outputs), src
    assert any("NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in cells), "no checked cell"


def test_importing_bnbook_changes_nothing_global():
    """Every module (found by walking the package, chapters included) imports without global side effects."""
    code = (
        "import random, numpy as np, torch, matplotlib\n"
        "state = (random.getstate(), np.random.get_state()[1].sum(), torch.initial_seed(),"
        " dict(dict.items(matplotlib.rcParams)), torch.get_num_threads())\n"
        "import importlib, pkgutil, sys, bnbook\n"
        "names = [m.name for m in pkgutil.walk_packages(bnbook.__path__, 'bnbook.')]\n"
        "assert len(names) > 20 and 'bnbook.chapters.preface' in names, names\n"
        "for name in names:  # the ipywidgets binding last: it is the one module allowed to import ipywidgets\n"
        "    if name != 'bnbook.widgets.live':\n"
        "        importlib.import_module(name)\n"
        "widgets_before_live = 'ipywidgets' in sys.modules\n"
        "importlib.import_module('bnbook.widgets.live')\n"
        "after = (random.getstate(), np.random.get_state()[1].sum(), torch.initial_seed(),"
        " dict(dict.items(matplotlib.rcParams)), torch.get_num_threads())\n"
        "assert state[:3] == after[:3], 'import changed a random state'\n"
        "assert state[3] == after[3], 'import changed matplotlib rcParams'\n"
        "assert state[4] == after[4], 'import changed the torch thread count'\n"
        "assert not widgets_before_live, 'only bnbook.widgets.live may import ipywidgets'\n"
        "assert 'torchvision' not in sys.modules, 'torchvision must be imported lazily'\n"
        "assert 'mlxtend' not in sys.modules, 'mlxtend must be imported lazily'\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'no pyplot (global state) in the library'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_snapshot_detects_a_modified_notebook(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import snapshot
    finally:
        sys.path.pop(0)
    before = snapshot.take()
    after = json.loads(json.dumps(before))
    name = next(iter(after["notebooks"]))
    after["notebooks"][name] = "0" * 64
    after["git_status"].append(" M " + name)
    problems = snapshot.diff(before, after)
    assert any(name in p for p in problems) and len(problems) == 2
    assert snapshot.diff(before, before) == []


def test_book_cache_is_cleared_when_the_library_or_settings_change(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import book_cache
    finally:
        sys.path.pop(0)
    cache = tmp_path / ".jupyter_cache"
    cache.mkdir()
    monkeypatch.delenv("BNBOOK_QUICK", raising=False)
    book_cache.main(str(tmp_path))  # first build: nothing recorded yet
    assert not cache.exists()
    cache.mkdir()
    book_cache.main(str(tmp_path))  # nothing changed: the executed notebooks are reused
    assert cache.exists() and "reusing" in capsys.readouterr().out
    monkeypatch.setenv("BNBOOK_QUICK", "1")  # quick outputs must never be served as full ones
    book_cache.main(str(tmp_path))
    assert not cache.exists()
    cache.mkdir()
    monkeypatch.setattr(book_cache, "fingerprint", lambda: "an edited bnbook/")
    book_cache.main(str(tmp_path))
    assert not cache.exists()
