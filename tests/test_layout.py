"""The package layout: the library and the chapters apart, small modules, every module importable."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import shutil
import sys
from pathlib import Path

import pytest

import bnbook

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bnbook"
MAX_LINES = 500
MODULES = sorted(info.name for info in pkgutil.walk_packages(bnbook.__path__, "bnbook."))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _source(module: str) -> Path:
    path = PACKAGE.joinpath(*module.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imported(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute names of every module that ``path`` (under ``root``) imports, relative imports resolved."""
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


def test_the_walk_finds_the_library_and_the_chapters():
    assert "bnbook.layers" in MODULES and "bnbook.functional" in MODULES and "bnbook.widgets" in MODULES
    assert "bnbook.chapters.preface" in MODULES
    assert any(m.startswith("bnbook.chapters.internal_covariate_shift.") for m in MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module):
    importlib.import_module(module)


@pytest.mark.parametrize("module", [m for m in MODULES if not m.startswith("bnbook.chapters")])
def test_the_library_never_imports_the_chapters(module):
    bad = sorted(n for n in _imported(_source(module)) if n == "bnbook.chapters" or n.startswith("bnbook.chapters."))
    assert bad == [], f"{module} imports {bad}: the library must not depend on a chapter"


@pytest.mark.parametrize("module", MODULES)
def test_modules_are_small(module):
    lines = len(_source(module).read_text().splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines; split it (one job per module, < ~{MAX_LINES} lines)"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_its_chapter_module(notebook):
    number, _, slug = notebook.stem.partition("_")
    assert number.isdigit() and slug, f"{notebook.name}: name notebooks NN_slug.ipynb"
    module = importlib.import_module(f"bnbook.chapters.{slug}")
    assert module.__doc__ and "chapter" in module.__doc__.lower(), f"bnbook.chapters.{slug} needs a docstring"


def test_every_chapter_module_has_its_notebook():
    slugs = {p.stem.partition("_")[2] for p in NOTEBOOKS}
    chapters = {info.name for info in pkgutil.iter_modules(importlib.import_module("bnbook.chapters").__path__)}
    assert chapters <= slugs, f"chapter modules without a notebook: {sorted(chapters - slugs)}"


def test_book_cache_hashes_subpackages_and_templates(tmp_path, monkeypatch):
    """An edit anywhere under bnbook/ (a chapter subpackage, a template) must clear the book's cache."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import book_cache
    finally:
        sys.path.pop(0)
    shutil.copytree(PACKAGE, tmp_path / "bnbook", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(book_cache, "ROOT", tmp_path)
    before = book_cache.fingerprint()
    deep = tmp_path / "bnbook" / "chapters" / "internal_covariate_shift" / "panel.py"
    deep.write_text(deep.read_text() + "\n# edited\n")
    after_deep = book_cache.fingerprint()
    assert after_deep != before
    template = next((tmp_path / "bnbook").rglob("*.js"), None) or (tmp_path / "bnbook" / "data.txt")
    template.write_text(template.read_text() + "\n" if template.exists() else "x")
    assert book_cache.fingerprint() != after_deep


def test_the_import_check_catches_a_library_module_that_imports_a_chapter(tmp_path):
    probe = tmp_path / "bnbook" / "plots2.py"
    probe.parent.mkdir()
    probe.write_text("from .chapters import preface\nimport bnbook.chapters.batch_norm_from_scratch\n")
    assert {"bnbook.chapters", "bnbook.chapters.batch_norm_from_scratch"} <= _imported(probe, tmp_path)


@pytest.mark.parametrize("module", [m for m in MODULES if m != "bnbook.settings"])
def test_only_bnbook_settings_reads_the_environment(module):
    text = _source(module).read_text()
    assert "os.environ" not in text and "getenv" not in text, f"{module}: read BNBOOK_* through bnbook.settings"


def test_every_chapter_that_shows_a_panel_exposes_its_make_panel():
    """The benchmarks and the book find panels through bnbook.chapters.panel_factories()."""
    from notebook_cells import code_cells, source

    from bnbook.chapters import panel_factories

    showing = {p.stem.partition("_")[2] for p in NOTEBOOKS if any("show(" in source(c) for c in code_cells(p))}
    assert showing and showing <= set(panel_factories()), sorted(showing - set(panel_factories()))
