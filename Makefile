# Two commands do everything (README): `make run` (the daemon, in Docker) and `make test` (set up + all tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test lint run demo bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed  ## virtual environment with the daemon, the emulator and the test tools

LINT_PATHS := src tests benchmarks scripts

lint: setup  ## the habits CI enforces (also run by .pre-commit-config.yaml): ruff, ruff format, mypy --strict
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict src/keboola_sync

test: lint  ## everything CI runs: lint, unit, emulator, SDK conformance, end-to-end, Docker
	$(BIN)/pytest -q -p no:cacheprovider --durations=20

# Docker Desktop has Compose v2 (`docker compose`); older engines have docker-compose v1.
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

run:  ## the daemon in Docker on WATCH_DIR, with your token from .env
	@test -f .env || { cp .env.example .env; chmod 600 .env; echo "Created .env: put your KBC_STORAGE_API_TOKEN in it, then run 'make run' again."; exit 1; }
	$(COMPOSE) up --build

demo: setup  ## no Keboola account needed: the emulator and the daemon on ./data
	$(BIN)/python scripts/demo.py

bench: setup  ## speed and memory benchmarks; prints a table
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
