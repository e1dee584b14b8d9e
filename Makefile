# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= outputs/baseline
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache

.PHONY: setup run test test-props bench derive clean fonts browser warmup explore

# Debian packages, installed only where apt-get can run (root); without them the figures use
# English place names and the HTML report's screenshot test skips.
APT_INSTALL = if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1)) >/dev/null 2>&1 \
	  || echo "note: could not install $(1)"; \
	else echo "note: $(1) not installed (needs root and apt-get)"; fi

# A font with CJK glyphs, so that figures can print Chinese place names.
fonts:
	@fc-list 2>/dev/null | grep -q "Noto Sans CJK" || { $(call APT_INSTALL,fonts-noto-cjk fontconfig); }

# Headless Chromium, for the test that screenshots the HTML report.
browser:
	@command -v chromium >/dev/null || { $(call APT_INSTALL,chromium); }

$(STAMP): pyproject.toml
	-@$(MAKE) --no-print-directory fonts
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# Baseline projection on the shipped inputs: projection.nc, targets.csv and report in $(RUN_DIR).
run: $(STAMP)
	$(PY) -m sim hydra.run.dir=$(RUN_DIR) $(ARGS)
	@echo "outputs in $(RUN_DIR): projection.nc targets.csv regions.csv report.txt; figures in $(RUN_DIR)/figures"

# The lever explorer (a local web app): python -m sim.explore, its URL printed; ARGS for its
# arguments (ARGS="params=calibrated_ensemble port=8060").
explore: $(STAMP)
	$(PY) -m sim.explore $(ARGS)

test: $(STAMP) browser
	$(PY) -m pytest -q

# The property suite (tests/properties) with the larger hypothesis profile; `make test` runs it
# with the small fixed-seed one.
test-props: $(STAMP)
	HYPOTHESIS_PROFILE=full $(PY) -m pytest -q tests/properties

# Compile the kernel into the numba cache (NUMBA_CACHE_DIR) once, before submitting a SLURM array.
warmup: $(STAMP)
	$(PY) -m sim.warmup

# The benchmark suite (benchmarks/README.md): results in benchmarks/results/latest.{md,json}.
bench: $(STAMP)
	$(PY) -m benchmarks

# Re-derive sim/data from the census tables in ../shared/data (the committed files must not change).
derive: $(STAMP)
	$(PY) -m sim.derive --census ../shared/data --out sim/data

clean:
	rm -rf $(VENV) outputs multirun .numba_cache .pytest_cache
