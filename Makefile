# bnbook — every target is idempotent and creates .venv on first use.
#   make book   execute every notebook and build the static site into _build/html
#   make test   lint, unit + contract tests, doctests, notebooks under nbval, book build, browser tests
#   make unit   the library's tests only (no chapters, browser or book build): the fast edit-test loop
#   make lint   ruff check + ruff format --check
#   make notebooks  execute every chapter in FULL mode in place (the stored outputs readers see)
#   make lab    JupyterLab on localhost (token auth on), opened at notebooks/
#   make bench  benchmarks -> benchmarks/results.json and a table
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bnbook-installed

LINTED := bnbook tests benchmarks scripts

.PHONY: setup book test unit lint notebooks lab bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "bnbook needs Python 3.11 (d2l 1.0.3 pins numpy 1.23.5); set PYTHON=/path/to/python3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

# BNBOOK_STATIC=1: panels render as self-contained HTML+JS frames (no kernel on a static site).
book: setup
	bash scripts/vendor_mathjax.sh
	$(PY) scripts/book_cache.py _build
	BNBOOK_STATIC=1 $(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "open _build/html/index.html"

test: setup lint
	bash scripts/ensure_chromium.sh
	$(PY) scripts/snapshot.py save .test-snapshot.json
	BNBOOK_QUICK=1 $(PY) -m pytest tests bnbook notebooks --doctest-modules --nbval-lax --nbval-current-env \
		-p no:cacheprovider --cov=bnbook --cov-report=term-missing --cov-fail-under=90
	$(PY) scripts/snapshot.py check .test-snapshot.json

unit: setup
	$(PY) -m pytest tests --ignore=tests/chapters --ignore=tests/test_notebooks.py -m "not slow and not browser" -q \
		-p no:cacheprovider

lint: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

notebooks: setup
	$(PY) scripts/run_notebooks.py

lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf _build .pytest_cache .coverage htmlcov .test-snapshot.json
