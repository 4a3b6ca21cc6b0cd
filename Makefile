# Every target sets up what it needs: a fresh clone runs `make run` or `make test` and nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck bench migrate demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## start Portrait: API + worker (embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL)
	$(BIN)/portrait up --host $(HOST) --port $(PORT)

test: $(STAMP)  ## the whole test suite, against real PostgreSQL and Redis (embedded if none is given)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared services

migrate: $(STAMP)
	$(BIN)/portrait migrate

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .portrait .pytest_cache .mypy_cache .ruff_cache
