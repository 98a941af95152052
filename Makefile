# Two commands do everything on a fresh machine:
#   make run    set up .venv (once), then run the playground stage end to end
#   make test   set up .venv (once), lint, then the quick tests (pyproject: -m 'not slow')
#   make test-all  the same with every test, slow ones included: what CI runs (.ci/run)
#   make notebooks  strip outputs, write 02_train's parameters cell from TrainConfig
# Set-up is idempotent: it reinstalls only when pyproject.toml or the constraints change.

PYTHON ?= python3
VENV   ?= .venv
STAGE  ?= playground
ARGS   ?=
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.maskdepth-installed
CONSTRAINTS := requirements/constraints.txt

.PHONY: setup run test test-all lint notebooks bench gpu-check clean-venv

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[test,onnx,pretrained,real]"
	touch $(STAMP)

run: setup
	$(VENV)/bin/maskdepth run --stage $(STAGE) $(ARGS)

lint: setup
	$(VENV)/bin/ruff check lib tests bench notebooks
	$(PY) -m maskdepth.workflow.nbclean --check notebooks

# Notebooks stored without outputs, 02_train's parameters cell written from TrainConfig
# (lint's --check fails when it differs).
notebooks: setup
	$(PY) -m maskdepth.workflow.nbclean notebooks

test: setup lint
	$(PY) -m pytest $(ARGS)

test-all: setup lint
	$(PY) -m pytest -m "slow or not slow" $(ARGS)

bench: setup
	$(PY) -m bench.run $(if $(QUICK),--quick,) $(ARGS)

gpu-check: setup
	$(PY) -m bench.gpu_check $(ARGS)

clean-venv:
	rm -rf $(VENV)
