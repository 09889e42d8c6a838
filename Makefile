# The lab's commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STACK ?= dev

.DEFAULT_GOAL := help
.PHONY: help venv dev-deps test lint bench

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

# Stamp files: reinstall only when a requirements file changed.
$(VENV)/.runtime-installed: $(BIN)/python requirements.txt forwarder/requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r forwarder/requirements.txt
	@touch $@

$(VENV)/.dev-installed: $(BIN)/python requirements.txt forwarder/requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.runtime-installed ## Create the virtual environment with the lab's pinned dependencies

dev-deps: $(VENV)/.dev-installed

test: dev-deps ## Install what the tests need and run every test
	$(BIN)/python -m pytest

lint: dev-deps ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: dev-deps ## Benchmark the forwarder against moto and a local receiver (prints figures)
	$(BIN)/python -m tests.bench.run

# The lab in AWS. Needs the Pulumi CLI, the AWS CLI with credentials, and Docker unless
# forwarderImage or forwarderBuild=source is set; scripts/check-prereqs.sh names what is missing.
.PHONY: up down

up: ## Bring the lab up in AWS (stack dev; STACK=name for another): checks, venv, pulumi up
	@STACK=$(STACK) scripts/check-prereqs.sh up
	@$(MAKE) --no-print-directory venv
	@STACK=$(STACK) scripts/lab-up.sh

down: ## Destroy everything the lab created and remove the stack
	@STACK=$(STACK) scripts/check-prereqs.sh down
	@STACK=$(STACK) scripts/lab-down.sh
