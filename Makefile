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
	@touch $(VENV)/.runtime-installed $@

venv: $(VENV)/.runtime-installed ## Create the virtual environment with the lab's pinned dependencies

dev-deps: $(VENV)/.dev-installed

test: dev-deps ## Install what the tests need and run every test
	$(BIN)/python -m pytest

lint: dev-deps ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: dev-deps ## Benchmark the forwarder against moto and a local receiver (prints figures)
	$(BIN)/python -m tests.bench.run

# The documentation site (mkdocs.yml, docs/). `make docs` first regenerates the tables written from the
# code (docs_tools: the settings from Pulumi.yaml, the forwarder's flags), then builds in strict mode.
# NO_MKDOCS_2_WARNING: Material for MkDocs prints a banner about MkDocs 2 on every build otherwise.
.PHONY: docs docs-serve
DOCS_ENV := NO_MKDOCS_2_WARNING=1

docs: dev-deps ## Build the documentation site into site/ (regenerates the settings table first)
	$(BIN)/python -m docs_tools write
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --site-dir site

docs-serve: dev-deps ## Serve the documentation on http://127.0.0.1:8000, rebuilt as you edit
	$(DOCS_ENV) $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

# The lab in AWS: labctl (Python, in the venv) checks what is needed and names everything missing at
# once, then runs pulumi and aws with argument lists. The recipes stay one line each so they behave
# alike under GNU make 3.81 and /bin/bash 3.2 (macOS). PULUMI_FLAGS, LOG_GROUP_QUIET_SECONDS,
# LOG_GROUP_MAX_WAIT_SECONDS, KEY and VALUE reach labctl through the environment (make exports
# command-line variables), so their quotes are never parsed by make or a shell. Every pulumi command
# labctl runs gets the backend in PULUMI_BACKEND_URL: nothing logs in, no other project changes.
.PHONY: up down config stack env

up: venv ## Bring the lab up in AWS (stack dev; STACK=name for another; PULUMI_FLAGS=--yes)
	@$(BIN)/python -m labctl up --stack "$(STACK)"

down: venv ## Destroy the lab, wait until EKS stops recreating its log group, remove the stack
	@$(BIN)/python -m labctl down --stack "$(STACK)"

config: venv ## Set a setting, also before the first make up: make config KEY=forwarderBuild VALUE=source
	@$(BIN)/python -m labctl config --stack "$(STACK)"

stack: venv ## Create the stack as make up would (for your own pulumi config set) and print the env it needs
	@$(BIN)/python -m labctl stack --stack "$(STACK)"

env: venv ## Print the exports your own pulumi commands need (for eval in your shell: see make stack)
	@$(BIN)/python -m labctl env --stack "$(STACK)"

# The workshop: trigger the lab's example events and read Falco's alerts (kubectl and the
# stack's kubeconfig output). WORKSHOP_ENV: what its pulumi command needs, as `labctl env` says (this
# clone's backend if the stack lives there, the passphrase file make up generated), as NAME='value'
# pairs before the command; expanded when the recipe runs, after the venv exists.
.PHONY: examples trigger alerts pipeline workshop-cleanup
EXAMPLE ?=
SINCE ?= 10m
RULE ?=
WORKSHOP_ENV = $(shell $(BIN)/python -m labctl env --assignments --stack "$(STACK)")

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
