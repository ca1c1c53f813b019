# The two commands in the README: `make demo` and `make test`. Both set up .venv first.
PY := .venv/bin/python
VENV_OK := .venv/.installed

.PHONY: demo test lint bench tasks docs clean

$(VENV_OK): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(VENV_OK)

demo: $(VENV_OK)
	$(PY) -m tandem.demo

lint: $(VENV_OK)
	$(PY) -m ruff check src tests benchmarks scripts

test: $(VENV_OK) lint
	$(PY) -m pytest

tasks: $(VENV_OK)
	$(PY) benchmarks/tasks.py

# docs/config.md and docs/cli.md are generated from the code (tests/test_docs.py checks them).
docs: $(VENV_OK)
	$(PY) scripts/gen_docs.py

clean:
	rm -rf .venv runs build *.egg-info src/*.egg-info
