# ticketlint developer entry points. Both targets set themselves up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo needs only the runtime dependencies (no test or lint extras).
RUNTIME_STAMP := $(VENV)/.runtime-installed
$(RUNTIME_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/ticketlint demo

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

LINT_STAMP := $(VENV)/.lint-installed
$(LINT_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(LINT_STAMP)

# ruff (rules pinned in pyproject.toml), the formatter, and mypy over the installed
# package name: mypy cannot follow pip's editable import hook, so it reads the tree
# through a temporary folder whose `ticketlint` entry links to this repository.
lint: $(LINT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@tmp=$$(mktemp -d) && ln -s "$(CURDIR)" "$$tmp/ticketlint" && \
	  MYPYPATH="$$tmp" $(BIN)/mypy -p ticketlint; rc=$$?; rm -rf "$$tmp"; exit $$rc

# Rewrite the generated references (docs/rules.md, docs/configuration.md, docs/cli.md).
docs: $(STAMP)
	$(BIN)/python -m ticketlint.docs_gen

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .ticketlint build *.egg-info
