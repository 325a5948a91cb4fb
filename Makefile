# HLTHZ developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?= --durations=25
TEST_JOBS ?= 2

.PHONY: help venv system check lint typecheck typecheck-tree drift test test-fast fuzz soak demo generate golden bench clean

help:
	@echo "make demo   - set up and run the before/after story (hlthz demo)"
	@echo "make test   - set up, install services, lint, type-check and run the whole suite"
	@echo "make test-fast - lint, type-check and every test not marked slow (about 2 minutes)"
	@echo "make check  - ruff, mypy and the generated-file drift checks only"
	@echo "make generate - regenerate alert rules, runbooks, tests and dashboards"
	@echo "make golden - rewrite tests/golden/*/out/ from each case's in.yaml (review git diff)"
	@echo "make bench  - run the benchmarks in benchmarks/"
	@echo "make fuzz   - every hostile input against every file-reading command (tests/fuzz)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

system:
	bash scripts/install-system-deps.sh

# mypy cannot follow setuptools' editable import hook, so it reads a tree of symlinks that
# mirrors the installed layout (hlthz/ + hlthz/<subpackage> -> ../<subpackage>).
# Rebuilt every run (cheap), so a module added to or removed from hlthz/ is never missed.
typecheck-tree: $(STAMP)
	@rm -rf .typecheck && mkdir -p .typecheck/hlthz
	@for f in hlthz/*.py; do ln -sf ../../$$f .typecheck/hlthz/; done
	@for p in exporter demo_api alerts dashboards replay tools; do ln -sfn ../../$$p .typecheck/hlthz/$$p; done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: typecheck-tree
	cd .typecheck && ../$(BIN)/mypy --config-file ../pyproject.toml -p hlthz

# Committed generated files (alerts/generated, runbooks, dashboards/generated, tests/golden) must be
# what the generators write; each failure names the command that regenerates.
DRIFT_TESTS := tests/alerts/test_generate.py::test_committed_files_are_what_generate_writes \
	tests/dashboards/test_generate.py::test_committed_files_are_current \
	tests/golden/test_golden.py::test_generated_files_equal_the_golden_files

drift: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider $(DRIFT_TESTS)

check: lint typecheck drift

# Two passes: every test that does not judge timing on TEST_JOBS processes (pytest-xdist, one
# test file per process, so module fixtures are started once), then the `serial` tests alone, so
# a latency verdict never shares the machine with another test. Both passes always run.
test: venv system check
	@status=0; \
	$(BIN)/pytest -n $(TEST_JOBS) --dist loadfile -m "not serial" $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/pytest -m serial $(PYTEST_ARGS) || status=$$?; \
	exit $$status

# The inner loop: no service installation, slow end-to-end tests left out (CONTRIBUTING.md).
test-fast: venv check
	@status=0; \
	$(BIN)/pytest -q -n $(TEST_JOBS) --dist loadfile -m "not slow and not serial" $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/pytest -q -m "serial and not slow" $(PYTEST_ARGS) || status=$$?; \
	exit $$status

# The whole hostile corpus (make test runs a sample): each command under a 1 GiB address-space
# limit and a timeout; prints outcomes per area and every case that failed.
fuzz: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/fuzz/test_properties.py
	$(PY) -m tests.fuzz.runner --all

# The long proofs at full length (make test runs them shorter; tests/conftest.py SOAK).
soak: venv
	HLTHZ_SOAK=1 $(BIN)/pytest -q -p no:cacheprovider tests/capture/test_load.py \
		tests/replay/test_timeline.py tests/exporter/test_cardinality.py

demo: venv
	$(BIN)/hlthz demo

# The repository's worked example, alerts/thresholds.yaml, into the package's own folders (a
# project's hlthz.yaml generates beside itself instead: docs/alerts.md).
generate: venv
	$(BIN)/hlthz alerts generate --config alerts/thresholds.yaml --out alerts
	$(BIN)/hlthz dashboards generate --config alerts/thresholds.yaml --out dashboards/generated

# The golden in/out pairs the tests in tests/golden compare against (docs/CONTRIBUTING.md).
golden: venv
	$(PY) -m tests.golden.regenerate

bench: venv
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .typecheck .mypy_cache .ruff_cache .pytest_cache build *.egg-info
