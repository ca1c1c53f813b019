# The two commands in the README: `make demo` and `make test`. Both set up .venv first.
PY := .venv/bin/python
VENV_OK := .venv/.installed

.PHONY: demo test lint bench tasks clean

$(VENV_OK): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(VENV_OK)

demo: $(VENV_OK)
	$(PY) -m tandem.demo

lint: $(VENV_OK)
	$(PY) -m ruff check src tests benchmarks

test: $(VENV_OK) lint
	$(PY) -m pytest

tasks: $(VENV_OK)
	$(PY) benchmarks/tasks.py

clean:
	rm -rf .venv runs build *.egg-info src/*.egg-info
