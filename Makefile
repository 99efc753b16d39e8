# Quick start: `make demo` (main job on the embedded default model) and `make test` (full suite).
# Both create ./.venv and install everything on first use (torch==2.13.0 CPU first).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,compare]'
	touch $(STAMP)

setup: $(STAMP)

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
