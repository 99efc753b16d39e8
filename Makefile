# Quick start: `make app` (main job: the dashboard on the embedded default model) and `make test` (full suite).
# `make demo` runs the end-to-end command-line demo instead.
# Both create ./.venv and install everything on first use (torch==2.13.0 CPU first).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup app demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,compare,app,scale]'
	touch $(STAMP)

setup: $(STAMP)

app: setup
	$(VENV)/bin/sublens app

demo: setup
	$(VENV)/bin/sublens demo

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) benchmarks/capture.py

clean:
	rm -rf $(VENV) runs .pytest_cache
