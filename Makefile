# cascade-radar — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CR := $(BIN)/cascade-radar
# `today` and `daily` exit 3 when a coin's answer is missing or outdated — the signal cron and systemd watch (they call
# cascade-radar directly: deploy/). Typed by hand through make, on the shipped history, that is news, not a failure:
# say so in one line instead of make's "Error 3" banner; every other status is passed on.
OUTDATED_IS_NEWS = rc=$$?; if [ $$rc -eq 3 ]; then echo "exit 3: some answers are missing or outdated (the shipped history ends in 2025-26) - nothing is broken; 'make daily' with internet brings the store up to date"; else exit $$rc; fi
UV_VERSION := 0.13.9
# ASSET=X: the coin a command answers for; not given, the setting's default (BTC, or the first configured coin)
ASSET ?=
DATE ?=
PORT ?= 3000
ifneq ($(strip $(ASSET)),)
export CASCADE_RADAR_ASSET := $(ASSET)
endif
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export MPLBACKEND := Agg
export NO_MKDOCS_2_WARNING := 1  # mkdocs-material's banner about MkDocs 2 on every build

.PHONY: help setup browser charts lock lint data-reference data status features features-list events train tune evaluate today daily ledger rehearse explain replay backtest bench screenshots serve bento ui ui-stop docs docs-serve test clean

help: ## list every target with a one-line description
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements.lock pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --quiet -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --quiet --no-deps -e .
	@touch $@

setup: $(VENV)/.installed browser charts ## create .venv and install the project (editable) with its test tools, from the lock, the test browser and the dashboard's chart bundle

# Plotly's basic bundle (scatter, bar: all the dashboard draws; 1.2 MB instead of the full 4.8 MB), from the npm registry,
# pinned by version and integrity; without npm the service falls back to the full bundle inside the plotly Python package
PLOTLY_BASIC := plotly.js-basic-dist-min@4.1.1
PLOTLY_BASIC_SHA512 := 1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/OU5FHUHvzqbqxN4mnwZGI9abTiE775C4kkjMQ==
CHARTS := serving/dashboard/vendor/plotly-basic.min.js

charts: $(CHARTS) ## the dashboard's chart bundle (npm; skipped, with why, where npm cannot fetch it)

$(CHARTS):
	@if ! command -v npm >/dev/null 2>&1; then echo "charts: no npm here; the dashboard serves the full Plotly bundle of the plotly package"; exit 0; fi; \
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent $(PLOTLY_BASIC) >/dev/null 2>&1) \
	  && [ "$$(openssl dgst -sha512 -binary $$tmp/*.tgz | base64 -w0)" = "$(PLOTLY_BASIC_SHA512)" ] \
	  && tar -xzf $$tmp/*.tgz -C $$tmp package/plotly-basic.min.js && mkdir -p $(dir $@) && mv $$tmp/package/plotly-basic.min.js $@ \
	  && echo "charts: $(PLOTLY_BASIC) -> $@" \
	  || echo "charts: could not fetch $(PLOTLY_BASIC) (or its integrity did not match); the dashboard serves the full Plotly bundle"; \
	rm -rf $$tmp

browser: ## Debian's chromium for the dashboard's browser test and bench (apt-get; skipped, with why, where it cannot be installed)
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "browser: no apt-get here; install Chromium yourself (the browser test skips without it)"; \
	elif [ "$$(id -u)" = 0 ]; then echo "browser: installing Debian's chromium (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } \
	  && echo "browser: $$(chromium --version 2>/dev/null | head -1)" || echo "browser: apt-get could not install chromium (the browser test skips without it)"; \
	elif sudo -n true 2>/dev/null; then echo "browser: installing Debian's chromium (sudo apt-get)"; \
	  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
	  && echo "browser: $$(chromium --version 2>/dev/null | head -1)" || echo "browser: sudo apt-get could not install chromium (the browser test skips without it)"; \
	else echo "browser: not root and no sudo: run 'sudo apt-get install chromium' (the browser test skips without it)"; fi

lock: $(BIN)/python ## re-resolve requirements.lock from pyproject.toml (needs the package registry)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python $(BIN)/python -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --python $(BIN)/python -c requirements.lock -o serving/requirements.txt  # the Bento's: runtime only

data-reference: setup ## load the reference history (../shared/data) into the local store
	$(CR) data import-reference

data: setup ## fetch new days of every series from the live providers (needs internet; keys in the environment)
	$(CR) data update

status: setup ## print per series: source, first/last day, rows, gaps
	$(CR) data status

features: setup ## build the feature table (features + labels) for ASSET
	$(CR) features build

features-list: setup ## print the feature catalogue (name, family, label, unit, meaning)
	$(CR) features list

events: setup ## print the labelled cascade events
	$(CR) events

train: setup ## main job: (load reference history if empty) features -> walk-forward eval -> final fit -> MLflow -> champion gate
	$(CR) train

tune: setup ## nested walk-forward model selection over every coin (minutes: docs/model.md); writes its choice to data/selection.local.json (git-ignored; training prefers it), MLflow child runs; `cascade-radar tune --commit` updates the committed training/selection.json
	$(CR) tune

evaluate: setup ## walk-forward evaluation: print model vs baselines, write reports/ (no registration)
	$(CR) evaluate

explain: setup ## explain one day: make explain DATE=YYYY-MM-DD (or DATE=all for every day)
	@if [ -z "$(DATE)" ]; then echo "usage: make explain DATE=YYYY-MM-DD (or DATE=all)"; exit 2; fi
	@if [ "$(DATE)" = "all" ]; then $(CR) explain --all; else $(CR) explain --date $(DATE); fi

today: setup ## today's risk for every coin: P(cascade), side, alert, drivers, freshness of every family (exit 3 of an outdated store is said, not raised: cron calls cascade-radar itself)
	@$(CR) today; $(OUTDATED_IS_NEWS)

daily: setup ## the daily job (cron / systemd: deploy/): update the store, forecast every coin, append to the ledger, send alerts
	@$(CR) daily; $(OUTDATED_IS_NEWS)

rehearse: setup ## the daily job rehearsed against emulated providers (loopback): store cut 60 days before the reference's end, every value, feature, forecast, ledger row and alert checked, then with faults; exit 1 on any mismatch
	$(CR) rehearse

ledger: setup ## print the forecast ledger and its live track record
	$(CR) ledger

replay: setup ## replay the configured and largest past events from out-of-fold predictions (reports/replays/)
	$(CR) replay

backtest: setup ## what the forecast is worth in money: cut leverage on alerts vs always on, volatility and chance, out of fold (reports/backtest/, MLflow)
	$(CR) backtest

bench: setup ## benchmarks: training stages, serving latency, the dashboard, a 90-day daily replay, the ledger at 10^3..10^5 rows, memory over 50 champion swaps, cost against the coin count (7/50/200 synthetic coins and the real seven: time, memory, growth exponents); ratios to baselines measured in the same run
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_serving.py
	$(BIN)/python bench/bench_dashboard.py
	$(BIN)/python bench/bench_daily.py
	$(BIN)/python bench/bench_ledger.py
	$(BIN)/python bench/bench_front_door.py
	$(BIN)/python bench/bench_swaps.py
	$(BIN)/python bench/bench_scale.py

screenshots: setup ## the dashboard on the reference history at 1500 px, 400 px and dark, and a day's explanation PNG, in reports/dashboard/
	$(BIN)/python bench/screenshots.py

serve: setup ## start the prediction API and the dashboard on localhost:3000 (make serve PORT=3001 to change); Ctrl-C stops it
	@echo "dashboard: http://localhost:$(PORT)/dashboard   API docs: http://localhost:$(PORT)/"
	$(BIN)/bentoml serve serving.service:CascadeRadar --host 127.0.0.1 --port $(PORT)

bento: setup ## build a Bento that serves on its own: champions + history packaged, runtime requirements (serving/bentofile.yaml)
	$(CR) package
	BENTOML_HOME=$${BENTOML_HOME:-$(CURDIR)/bentoml_home} $(BIN)/bentoml build -f serving/bentofile.yaml .
	@echo "serve it from anywhere: BENTOML_HOME=$${BENTOML_HOME:-$(CURDIR)/bentoml_home} $(BIN)/bentoml serve cascade_radar:latest"

ui: setup ## MLflow UI on http://localhost:5000 against mlruns/ (make ui PORT=5001 to change; Ctrl-C stops it and its workers)
	$(CR) ui --port $(if $(filter command line environment,$(origin PORT)),$(PORT),5000)

ui-stop: ## stop an MLflow UI started by `make ui` elsewhere
	$(BIN)/python -c "from cascade_radar.config import Settings; from training.ui import stop_ui; print('stopped' if stop_ui(Settings()) else 'no UI running')"

docs: setup ## regenerate docs/features.md (the feature catalogue) and docs/glossary.md (cascade_radar/glossary.py), then build the documentation site into site/ (mkdocs, strict: a broken link fails)
	@{ echo "# Feature catalogue"; echo; echo "Generated by \`cascade-radar features list --markdown\` (\`make docs\`). Windows and lags come from \`FeatureConfig\`."; echo; $(CR) features list --markdown; } > docs/features.md
	@echo "wrote docs/features.md: $$(grep -c '^| `' docs/features.md) features"
	@$(BIN)/python -c "from cascade_radar.glossary import markdown; print(markdown(), end='')" > docs/glossary.md
	@echo "wrote docs/glossary.md: $$(grep -c '^\*\*' docs/glossary.md) terms"
	$(BIN)/mkdocs build --strict

docs-serve: setup ## serve the documentation site on http://127.0.0.1:8000, rebuilt on every edit (Ctrl-C stops it)
	$(BIN)/mkdocs serve -a 127.0.0.1:8000

lint: setup ## ruff over the whole tree (rules in pyproject.toml [tool.ruff])
	$(BIN)/ruff check .

test: setup ## run the linter, then the test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean: ## remove the local store, reports and caches (keeps .venv and mlruns)
	rm -rf data reports site .pytest_cache
