# Two commands do all the set-up: `make demo` and `make test` (see README.md).
.PHONY: setup demo test down lint unit

setup:
	@bash deploy/setup.sh
	@.venv/bin/resolver stack fetch

demo: setup
	@.venv/bin/resolver demo

test: setup
	@.venv/bin/python -m pytest -q -ra --durations=15 tests

unit: setup
	@.venv/bin/python -m pytest -q tests/unit

down:
	@if [ -x .venv/bin/resolver ]; then .venv/bin/resolver stack down; fi

lint:
	@.venv/bin/ruff check .
