# The two README commands: `make demo` and `make test`. Both install what is missing first
# (Python deps into .venv, Debian servers via scripts/install-system-packages) and install
# nothing on a second run.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test bench install system lint clean docs side-by-side

# The aeon-nova daily and weekly suites: instance failures (Redis, PostgreSQL) and a region
# partition. A missed target (exit 1) is a finding the report shows, not a failed demo.
demo: install
	@$(BIN)/harness suite --scenario aeon-nova --cadence daily --cadence weekly --out reports; rc=$$?; \
	if [ $$rc -le 1 ]; then echo "demo: open reports/index.html (suite exit $$rc)"; exit 0; fi; exit $$rc

test: install
	@$(BIN)/python -m pytest -p no:locust $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# Every benchmark runs even when an earlier one misses its goal (exit 1); the misses are listed last.
bench: install
	@missed=""; for bench in benchmarks/*.py; do echo "== $$bench"; \
	  $(BIN)/python $$bench || missed="$$missed $$bench"; done; \
	if [ -n "$$missed" ]; then echo "make bench: goal missed or error in:$$missed" >&2; exit 1; fi

# Every shipped local experiment run by `harness run` and by plain `chaos run` with the harness
# control, verdicts compared per check (issue 20). Many minutes: not part of `make test`.
side-by-side: install
	$(BIN)/python scripts/side-by-side

install: $(INSTALLED) system

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(INSTALLED)

system:
	@scripts/install-system-packages

lint: install
	$(BIN)/ruff check harness tests benchmarks
	$(BIN)/ruff format --check harness tests benchmarks

# docs/reference.md is generated from the activities' code (tests/ctk fails when it is stale).
docs: install
	$(BIN)/python -m harness.reference > docs/reference.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
