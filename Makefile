# The lab's commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STACK ?= dev

.DEFAULT_GOAL := help
.PHONY: help venv dev-deps test lint bench

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

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

# The workshop: trigger the lab's example events and read Falco's alerts (kubectl and the
# stack's kubeconfig output; with the local backend, the passphrase file make up generated).
.PHONY: examples trigger alerts pipeline workshop-cleanup
EXAMPLE ?=
SINCE ?= 10m
RULE ?=
PASSPHRASE_FILE := $(CURDIR)/.pulumi-state/passphrase-$(STACK)
WORKSHOP_ENV := $(if $(and $(wildcard $(PASSPHRASE_FILE)),$(if $(PULUMI_CONFIG_PASSPHRASE),,x)),PULUMI_CONFIG_PASSPHRASE_FILE=$(PASSPHRASE_FILE))

examples: venv ## List the workshop examples and the Falco rule each one triggers
	$(BIN)/python -m workshop list

trigger: venv ## Trigger one example in the lab: make trigger EXAMPLE=pod-in-kube-system
	@test -n "$(EXAMPLE)" || { echo "set EXAMPLE=<name>; 'make examples' lists them" >&2; exit 2; }
	$(WORKSHOP_ENV) $(BIN)/python -m workshop --stack $(STACK) trigger $(EXAMPLE)

alerts: venv ## Show Falco's alerts from both releases: make alerts SINCE=10m [RULE="Kube Namespace"]
	$(WORKSHOP_ENV) $(BIN)/python -m workshop --stack $(STACK) alerts --since $(SINCE) $(if $(RULE),--rule "$(RULE)")

pipeline: venv ## Audit events the forwarder delivered next to those Falco evaluated, with the difference
	$(WORKSHOP_ENV) $(BIN)/python -m workshop --stack $(STACK) pipeline

workshop-cleanup: venv ## Remove anything the examples left behind
	$(WORKSHOP_ENV) $(BIN)/python -m workshop --stack $(STACK) cleanup
