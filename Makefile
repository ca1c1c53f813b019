# The two commands in the README: `make demo` and `make test`. Both set up .venv first.
PY := .venv/bin/python
VENV_OK := .venv/.installed

.PHONY: demo test check lint bench tasks docs g2p-model clean

$(VENV_OK): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[train,dev]"
	touch $(VENV_OK)

demo: $(VENV_OK)
	$(PY) -m tandem.demo

lint: $(VENV_OK)
	$(PY) -m ruff check src tests benchmarks scripts

# Both tiers run on two pytest workers, one per core, each with one torch thread (two workers
# with a thread per core each would contend for the cores). `pytest FILE` alone runs serially.
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -n 2

# The whole suite (the README command, what CI runs).
test: $(VENV_OK) lint
	bash scripts/ensure_chromium.sh
	$(PYTEST)

# The fast tier for the edit loop: every test not marked slow (under a minute on 2 cores).
check: $(VENV_OK) lint
	$(PYTEST) -m "not slow"

tasks: $(VENV_OK)
	$(PY) benchmarks/recipes/tasks.py

# docs/config.md and docs/cli.md are generated from the code (tests/test_docs.py checks them).
docs: $(VENV_OK)
	$(PY) scripts/gen_docs.py

# The G2P model shipped in src/tandem/models/ (about an hour on 2 cores): train the release
# recipe (or finish it, if runs/g2p_en_release holds an unfinished run), then pack it.
G2P_RUN := runs/g2p_en_release
g2p-model: $(VENV_OK)
	if [ -f $(G2P_RUN)/last.pt ]; then $(PY) -m tandem train --resume $(G2P_RUN); \
	else $(PY) -m tandem train configs/g2p_en_release.yaml; fi
	$(PY) scripts/pack_g2p.py $(G2P_RUN)

clean:
	rm -rf .venv runs build *.egg-info src/*.egg-info
