# The two commands of the README: `make serve` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint typecheck pytest pytest-schema install console-screenshots db-url db-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start the embedded PostgreSQL (or use MEMORA_DATABASE_URL), migrate, serve the API on 127.0.0.1:8000.
serve: $(STAMP)
	$(BIN)/memora serve

## Install, lint, type-check and run the whole test suite, then run it again in another schema.
test: $(STAMP) lint typecheck pytest pytest-schema

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy app memora_migrations

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

## The suite with every Memora object in schema `ml` (MEMORA_DB_SCHEMA), less the tests about schema memora itself
## and those that do not depend on the schema (in a browser, unit tests, fuzzing of the inputs, replication).
pytest-schema: $(STAMP)
	MEMORA_DB_SCHEMA=ml $(BIN)/pytest -m "not memora_schema and not browser and not one_schema" $(PYTEST_ARGS)

## The console's screenshots in docs/console/, from the browser tests' last steps (tests/browser, in Chromium).
console-screenshots: $(STAMP)
	MEMORA_TEST_BROWSER=required $(BIN)/pytest -q tests/browser
	mkdir -p docs/console
	cp test-output/browser/journey-*.png test-output/browser/answer.png docs/console/

db-url: $(STAMP)
	@$(BIN)/memora db url

db-stop: $(STAMP)
	$(BIN)/memora db stop

clean:
	-$(BIN)/memora db stop
	rm -rf $(VENV) .memora .pytest_cache .mypy_cache .ruff_cache
