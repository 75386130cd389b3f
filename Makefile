# The two commands of the README: `make demo` and `make test`. Each creates .venv with
# Python 3.11 on a fresh machine and installs frugal into it.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: demo test bench install clean tfx-venv

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet -e clients/python
	@touch $(STAMP)

# The TFX proof of the hooks (tests/hooks) runs real TFX 1.16 in its own Python 3.10 venv:
# TFX pins protobuf 3.20 and ml-metadata 1.16, frugal ml-metadata 1.17. Built once (stamp),
# about 3 minutes and 2.7 GB. tfx_bsl imports dill, which the resolver leaves out.
TFX_VENV  := .venv-tfx
TFX_STAMP := $(TFX_VENV)/.installed
PYTHON_TFX ?= python3.10

$(TFX_STAMP): clients/python/pyproject.toml
	@rm -f $(TFX_VENV).failed
	@py=$$(command -v $(PYTHON_TFX)); $$py --version >/dev/null 2>&1 \
	  || py=$$(ls -d $$HOME/.pyenv/versions/3.10*/bin/python3.10 2>/dev/null | tail -n 1); \
	  test -x "$$py" || { echo "no Python 3.10 found: install it or set PYTHON_TFX" > $(TFX_VENV).failed; exit 1; }; \
	  test -x $(TFX_VENV)/bin/python || $$py -m venv $(TFX_VENV) \
	  || { echo "$$py -m venv $(TFX_VENV) failed" > $(TFX_VENV).failed; exit 1; }
	@echo "building $(TFX_VENV) (tfx==1.16.0, once; a few minutes)..."
	@( $(TFX_VENV)/bin/python -m pip install --quiet --upgrade pip \
	  && $(TFX_VENV)/bin/python -m pip install --quiet tfx==1.16.0 dill \
	  && $(TFX_VENV)/bin/python -m pip install --quiet -e clients/python ) > $(TFX_VENV).log 2>&1 \
	  || { tail -n 40 $(TFX_VENV).log > $(TFX_VENV).failed; cat $(TFX_VENV).failed; exit 1; }
	@touch $(TFX_STAMP)

demo: $(STAMP)
	$(VENV)/bin/frugal demo --out $(DEMO_OUT)

tfx-venv: $(TFX_STAMP)

# The Kubeflow Pipelines gate is compiled by the real kfp v2 SDK in its own small venv
# (kfp pins protobuf 4 and pulls the Kubernetes client; frugal needs neither).
KFP_VENV  := .venv-kfp
KFP_STAMP := $(KFP_VENV)/.installed

$(KFP_STAMP): clients/python/pyproject.toml
	@rm -f $(KFP_VENV).failed
	@test -x $(KFP_VENV)/bin/python || $(PYTHON) -m venv $(KFP_VENV)
	@( $(KFP_VENV)/bin/python -m pip install --quiet 'kfp>=2.7,<3' \
	  && $(KFP_VENV)/bin/python -m pip install --quiet -e clients/python ) > $(KFP_VENV).log 2>&1 \
	  || { tail -n 40 $(KFP_VENV).log > $(KFP_VENV).failed; cat $(KFP_VENV).failed; exit 1; }
	@touch $(KFP_STAMP)

# A failed TFX or kfp venv build does not stop the suite: the tests that need it fail with
# the reason (.venv-tfx.failed, .venv-kfp.failed); they are never skipped.
test: $(STAMP)
	-$(MAKE) -k $(TFX_STAMP) $(KFP_STAMP)
	bash tests/setup-system.sh
	$(PY) -m pytest -q -n 2 --timeout 600 tests

bench: $(STAMP)
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/simulate.py
	$(PY) benchmarks/analyze_corpus.py
	$(PY) benchmarks/pruning.py
	$(PY) benchmarks/planner.py
	$(PY) benchmarks/iterations.py
	$(PY) benchmarks/service.py

clean:
	rm -rf $(VENV) $(TFX_VENV) $(TFX_VENV).log $(TFX_VENV).failed $(KFP_VENV) $(KFP_VENV).log $(KFP_VENV).failed $(DEMO_OUT) .pytest_cache
