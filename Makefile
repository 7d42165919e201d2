PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test test-fast bench clean venv

$(VENV)/.base:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

$(VENV)/.demo: $(VENV)/.base pyproject.toml
	$(PIP) install --quiet -e ".[lab]"
	touch $@

$(VENV)/.dev: $(VENV)/.base pyproject.toml
	$(PIP) install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.dev

demo: $(VENV)/.demo
	$(VENV)/bin/alliance-stats demo --out results --force

test: $(VENV)/.dev
	MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider --doctest-modules alliance_stats tests --nbmake notebooks

test-fast: $(VENV)/.dev
	MPLBACKEND=Agg $(PY) -m pytest -q -m "not slow" tests

bench: $(VENV)/.dev
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) results build dist *.egg-info
