# Two commands on a fresh clone: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export COMPOSER_HOME ?= $(CURDIR)/var
export NUMBA_CACHE_DIR ?= $(CURDIR)/var/numba
export MPLCONFIGDIR ?= $(CURDIR)/var/matplotlib
export PYTHONWARNINGS ?= ignore

.PHONY: help venv run train serve featurize download-data info up down status test test-fast lint format bench bench-accuracy bench-app bench-transcription clean deploy deploy-check

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'

# requirements.lock: every package of requirements.txt and its dependencies, pinned with hashes
# (scripts/lock_requirements.sh). Packages already installed at the locked version are kept,
# so a re-run after a small change downloads only what changed.
$(STAMP): requirements.txt requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install everything from requirements.lock (when it changes)

run: $(STAMP) ## Train on the demo corpus if there is no champion yet, then serve the app
	$(BIN)/composer-id train --dataset demo --skip-if-champion
	$(BIN)/composer-id serve

train: $(STAMP) ## The main job on the demo corpus: featurize, train, register, promote
	$(BIN)/composer-id train --dataset $(or $(DATASET),demo)

serve: $(STAMP) ## Serve the champion in the Gradio app (http://127.0.0.1:7860)
	$(BIN)/composer-id serve

featurize: $(STAMP) ## Feature table for the demo corpus (DATASET=musicnet for MusicNet)
	$(BIN)/composer-id featurize --dataset $(or $(DATASET),demo)

download-data: $(STAMP) ## Download and extract MusicNet (resumable, checksum-verified)
	$(BIN)/composer-id download

info: $(STAMP) ## Settings, champion and registered versions
	$(BIN)/composer-id info

up: $(STAMP) ## The platform on this machine: MLflow server, Airflow, the app (no Docker)
	$(BIN)/python scripts/platform.py up

down: ## Stop what `make up` started
	$(BIN)/python scripts/platform.py down

status: ## Platform services: running?, pid, URL, health, memory
	$(BIN)/python scripts/platform.py status

test: $(STAMP) ## Every test: unit, data, model, integration (PostgreSQL, HTTP servers)
	@bash scripts/system-deps.sh
	$(BIN)/python scripts/check_deps.py
	$(BIN)/python scripts/check_module_size.py
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## Unit and data tests only
	$(BIN)/python -m pytest -m "unit or data"

lint: $(STAMP) ## ruff check
	$(BIN)/ruff check .

format: $(STAMP) ## ruff format + autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## Featurization speed and accuracy vs the seed extractor
	$(BIN)/python bench/featurize_bench.py

bench-accuracy: $(STAMP) ## Recognition on held-out works and the shifted set: v3 vs v4, demo vs demo + pack
	$(BIN)/python bench/accuracy.py

bench-app: $(STAMP) ## 8 concurrent API clients against the app: p50/p95 latency
	$(BIN)/python bench/app_load.py

bench-transcription: $(STAMP) ## Transcription variants: CPU-s per 30 s clip and onset F1 vs MIDI
	$(BIN)/python bench/transcription_bench.py

clean: ## Remove generated state (var/), keeps .venv
	rm -rf var .pytest_cache .ruff_cache

# Deployment (deploy/README.md, terraform/README.md). checkov lives in its own venv: it pins
# cachetools<6 while Airflow 3.3 needs cachetools>=6, so they cannot share .venv.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30

$(CHECKOV_VENV)/.installed:
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@printf '*\n' > $(CHECKOV_VENV)/.gitignore
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	@touch $@

deploy-check: $(STAMP) $(CHECKOV_VENV)/.installed ## Static checks: compose, Dockerfiles, terraform (+checkov); no Docker, no cloud
	$(BIN)/python -m pytest tests/deploy -q

deploy: ## Build + push images, terraform apply, upload DAGs to Composer (PROJECT_ID=... REGION=...)
	bash scripts/deploy.sh
