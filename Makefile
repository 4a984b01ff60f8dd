# cascade-radar — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CR := $(BIN)/cascade-radar
UV_VERSION := 0.13.9
ASSET ?= BTC
DATE ?=
PORT ?= 3000
export CASCADE_RADAR_ASSET ?= $(ASSET)
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export MPLBACKEND := Agg

.PHONY: help setup lock data-reference data status test clean

help: ## list every target with a one-line description
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --quiet -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --quiet --no-deps -e .
	@touch $@

setup: $(VENV)/.installed ## create .venv and install the project (editable) with its test tools, from the lock

lock: $(BIN)/python ## re-resolve requirements.lock from pyproject.toml (needs the package registry)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python $(BIN)/python -o requirements.lock

data-reference: setup ## load the reference history (../shared/data) into the local store
	$(CR) data import-reference

status: setup ## print per series: source, first/last day, rows, gaps
	$(CR) data status

test: setup ## run the test suite
	$(BIN)/python -m pytest

clean: ## remove the local store, reports and caches (keeps .venv and mlruns)
	rm -rf data reports .pytest_cache
