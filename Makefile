# Two commands do all the set-up: `make demo` and `make test` (see README.md).
.PHONY: venv setup demo test down lint unit

# The cached virtualenv only: enough for unit tests and lint (no Kafka download, no Jaeger build).
venv:
	@bash deploy/setup.sh

setup: venv
	@.venv/bin/resolver stack fetch

demo: setup
	@.venv/bin/resolver demo

test: setup
	@.venv/bin/python -m pytest -q -ra --durations=15 tests

unit: venv
	@.venv/bin/python -m pytest -q tests/unit

down:
	@if [ -x .venv/bin/resolver ]; then .venv/bin/resolver stack down; fi

lint: venv
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/lint-imports --no-logo
	@.venv/bin/mypy
