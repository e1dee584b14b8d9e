# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= outputs/baseline
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache

.PHONY: setup run test bench derive clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# Baseline projection on the shipped inputs: projection.nc, targets.csv and report in $(RUN_DIR).
run: $(STAMP)
	$(PY) -m sim hydra.run.dir=$(RUN_DIR) $(ARGS)
	@echo "outputs in $(RUN_DIR): projection.nc targets.csv regions.csv report.txt"

test: $(STAMP)
	$(PY) -m pytest -q

# Kernel vs NumPy reference and end-to-end timings on this machine.
bench: $(STAMP)
	$(PY) -m benchmarks.run

# Re-derive sim/data from the census tables in ../shared/data (the committed files must not change).
derive: $(STAMP)
	$(PY) -m sim.derive --census ../shared/data --out sim/data

clean:
	rm -rf $(VENV) outputs multirun .numba_cache .pytest_cache
