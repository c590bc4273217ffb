# Two commands do everything (README): `make run` (the daemon, in Docker) and `make test` (set up + all tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup tools test lint browser run demo demo-status bench lock clean

# Azurite (Microsoft's Azure Storage emulator, npm) for `keboola-emulator --file-storage azure`, pinned,
# in a project-local git-ignored folder. 3.35.0 is the newest release whose engines accept Node 20.
AZURITE_VERSION := 3.35.0
TOOLS := .tools
AZURITE_STAMP := $(TOOLS)/.azurite-$(AZURITE_VERSION)

# pip shows its progress: the first run downloads about 80 packages (a minute or so), and a silent
# terminal looks stuck.
$(VENV)/.installed: requirements.txt requirements-emulator.txt requirements-dev.txt pyproject.toml
	@echo "Setting up $(VENV): the daemon, the emulator and the test tools (requirements-dev.txt, about 80 packages; the first time takes a minute or two)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements-dev.txt
	$(BIN)/pip install --no-deps -e .
	@echo "$(VENV) is ready."
	touch $@

$(AZURITE_STAMP):
	npm install --prefix $(TOOLS) --no-save --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)
	touch $@

tools: $(AZURITE_STAMP)  ## Azurite for the emulator's --file-storage azure (needs Node.js and npm)

setup: $(VENV)/.installed $(AZURITE_STAMP)  ## virtual environment with the daemon, the emulator and the test tools

LINT_PATHS := src tests benchmarks scripts

lint: setup  ## the habits CI enforces (also run by .pre-commit-config.yaml): ruff, ruff format, mypy --strict
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict src/keboola_sync

# The status page is tested in a real browser: Debian's Chromium (root on our machines and in CI).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }

# The end-to-end files that name tables run a second time against a project without the legacy `c-`
# bucket prefix (Keboola's `disable-legacy-bucket-prefix` feature): the daemon must use Keboola's ids.
NO_PREFIX_E2E := tests/e2e/test_end_to_end.py tests/e2e/test_safety.py tests/e2e/test_commands.py tests/e2e/test_dry_run.py

# Most tests wait on a daemon, a settle window or a job, not on a core: four workers keep two cores busy.
# Tests that share something outside their tmp folder stay together (tests/conftest.py, shared_group).
TEST_WORKERS ?= 4
PYTEST := $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

# The end-to-end, reliability and bad-input suites run on each stack's file storage (AWS, Azure, GCP:
# tests/e2e/conftest.py); the no-prefix pass runs on AWS only (the bucket prefix is not the cloud's business).
test: lint browser  ## everything CI runs: lint, unit, emulator, SDK conformance, end-to-end, Docker, browser, clients
	$(PYTEST) --durations=20
	KEBOOLA_TEST_STACKS=aws KEBOOLA_EMULATOR_ARGS="--feature disable-legacy-bucket-prefix" $(PYTEST) $(NO_PREFIX_E2E)

# Docker Desktop has Compose v2 (`docker compose`); older engines have docker-compose v1.
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

run:  ## the daemon in Docker on WATCH_DIR, with your token from .env
	@test -f .env || { cp .env.example .env; chmod 600 .env; echo "Created .env: put your KBC_STORAGE_API_TOKEN in it, then run 'make run' again."; exit 1; }
	$(COMPOSE) up --build

demo: setup  ## no Keboola account needed: the emulator and the daemon on ./demo-data (never ./data)
	@$(BIN)/python scripts/demo.py || test $$? -eq 130

demo-status:  ## what the running `make demo` has synced
	@$(BIN)/keboola-sync --config .demo/config.yaml --env-file .demo/none.env status

lock: setup  ## after changing requirements*.txt: the hash-pinned locks the Docker image installs
	scripts/lock-requirements.sh

bench: setup  ## speed and memory benchmarks; prints a table
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache build *.egg-info
