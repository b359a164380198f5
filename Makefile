# Snapline: the two commands on a bare machine are `make up` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCAL := .local
STAMP := $(VENV)/.installed
SAMPLE_GAME ?= 2019090800

.PHONY: help up obs obs-down model down status test chaos fuzz lint format bench infra infra-down services services-down data sample venv browser clean

help:
	@echo "make up      set up what is missing, start infrastructure + five services, load a real game"
	@echo "make test    the same set-up, then the whole test suite"
	@echo "make obs     Prometheus on 127.0.0.1:19090 scraping the services, with the alert rules (or make up OBS=1)"
	@echo "make down    stop everything 'make up' started (by pid files)"
	@echo "make status  what is running"
	@echo "make chaos   kill -9 each component during a real season import; lost/doubled table"
	@echo "make fuzz    schemathesis over the running gateway's /openapi.json (FUZZ_EXAMPLES per operation)"
	@echo "make lint    ruff + mypy"
	@echo "make bench   benchmarks under bench/ (figures beside the raw baselines)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

infra: venv
	@bash deploy/local/infra.sh start
	@$(BIN)/python -m shared.topics

browser:
	@bash deploy/local/infra.sh browser

data: venv
	@bash deploy/local/data.sh >/dev/null

services: infra
	@bash deploy/local/services.sh start
	@bash deploy/local/services.sh wait 180

sample: services data
	@bash deploy/local/sample.sh $(SAMPLE_GAME)

# The EP/WP model, fitted from the corpus once per installation (snapline model fit refits it).
model: data
	@bash deploy/local/model.sh

up: sample model
	@if [ "$(OBS)" = 1 ]; then bash deploy/local/obs.sh start; fi
	@bash deploy/local/sample.sh --banner

# Prometheus scraping the five services, with the alert rules of deploy/observability/ (or: make up OBS=1).
obs: services
	@bash deploy/local/obs.sh start

obs-down:
	@bash deploy/local/obs.sh stop

down: obs-down services-down infra-down

services-down:
	@bash deploy/local/services.sh stop

infra-down:
	@bash deploy/local/infra.sh stop

status:
	@bash deploy/local/infra.sh status
	@bash deploy/local/services.sh status

test: services data browser
	@$(BIN)/python -m pytest -q -m "not chaos"

# Kill -9 each component (five services, Kafka, PostgreSQL, Redis) during a real season's import
# on engines of the suite's own; prints the table (also .local/logs/chaos-table.txt). CHAOS_SEED
# repeats a run. `make test` runs the query case of it.
chaos: services data
	@$(BIN)/python -m pytest -q tests/chaos -p no:cacheprovider

# Every operation of /openapi.json, bounded (FUZZ_EXAMPLES, default 30: about a minute on 2 cores);
# fails on any server error or schema violation, and removes the keys and data it made.
fuzz: services
	@$(BIN)/python -m tests.security.fuzz

lint: venv
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy shared services snapline_cli

format: venv
	@$(BIN)/ruff check --fix -q . ; $(BIN)/ruff format -q .

bench: services data
	@shopt -s nullglob; benches=(bench/*.py); [ $${#benches[@]} -gt 0 ] || { echo "no benchmarks yet"; exit 0; }; \
	for b in "$${benches[@]}"; do echo "== $$b"; $(BIN)/python "$$b" || exit 1; done

clean: down
	rm -rf $(LOCAL) $(VENV)
