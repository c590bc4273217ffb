# Two commands do everything (README): `make run` (the daemon, in Docker) and `make test` (set up + all tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup tools test lint run demo bench clean

# Azurite (Microsoft's Azure Storage emulator, npm) for `keboola-emulator --file-storage azure`, pinned,
# in a project-local git-ignored folder. 3.35.0 is the newest release whose engines accept Node 20.
AZURITE_VERSION := 3.35.0
TOOLS := .tools
AZURITE_STAMP := $(TOOLS)/.azurite-$(AZURITE_VERSION)

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(AZURITE_STAMP):
	npm install --prefix $(TOOLS) --no-save --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)
	touch $@

tools: $(AZURITE_STAMP)  ## Azurite for the emulator's --file-storage azure (needs Node.js and npm)

setup: $(VENV)/.installed $(AZURITE_STAMP)  ## virtual environment with the daemon, the emulator and the test tools

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts

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
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache build *.egg-info
