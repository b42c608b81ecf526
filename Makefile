# The first two targets are the README's: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: run install test test-fast lint bench screenshot clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "metrix-importer needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(VENV)/.installed
	@$(PY) -m importer.demo

# `make run` leaves metrix-import in .venv/bin; this puts it on PATH for this user.
install:
	@if command -v pipx >/dev/null 2>&1; then pipx install --force .; \
	else echo "pipx is not installed. Either install pipx (https://pipx.pypa.io) and run"; \
	echo "make install again, or use the project's .venv: make run, then . .venv/bin/activate"; \
	exit 1; fi

# Three workers on two cores: most tests spend their time waiting on a subprocess or a
# server (7 minutes in one process, under 4 in three).
test: $(VENV)/.dev-installed
	$(PY) -m pytest -q -n 3

# Unit tests only: no subprocess, no server (tests marked e2e are left out).
test-fast: $(VENV)/.dev-installed
	$(PY) -m pytest -q -m "not e2e"

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check importer tests benchmarks
	$(BIN)/ruff format --check importer tests benchmarks
	$(BIN)/mypy

bench: $(VENV)/.dev-installed
	$(PY) benchmarks/run.py
	$(PY) benchmarks/pacing.py
	$(PY) benchmarks/cluster.py

# The README's picture of the page, taken by the browser test of the whole flow.
screenshot: $(VENV)/.dev-installed
	METRIX_UPDATE_SCREENSHOT=1 $(PY) -m pytest -q tests/test_ui_browser.py -k whole_flow

clean:
	rm -rf $(VENV) bench .pytest_cache .mypy_cache .ruff_cache
