# The two commands of the README: `make demo` and `make test`. Each creates .venv with
# Python 3.11 on a fresh machine and installs frugal into it.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/frugal demo --out $(DEMO_OUT)

test: $(STAMP)
	bash tests/setup-system.sh
	$(PY) -m pytest -q -n 2 --timeout 600 tests

bench: $(STAMP)
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/simulate.py
	$(PY) benchmarks/analysis.py
	$(PY) benchmarks/pruning.py
	$(PY) benchmarks/planner.py
	$(PY) benchmarks/iterations.py
	$(PY) benchmarks/service.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
