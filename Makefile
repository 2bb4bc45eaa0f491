# Occam Arena: `make demo` runs the main job, `make test` runs the tests. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint clean-cache baselines

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip -c constraints.txt || true
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/occam demo

test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: setup
	$(PY) benchmarks/run_all.py

baselines: setup
	$(VENV)/bin/occam baselines --readme README.md

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
