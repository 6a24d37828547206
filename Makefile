# One command each: `make bench` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install check test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --group dev -e .
	touch $@

install: $(BIN)/.installed

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: check
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage report

bench: install
	$(BIN)/python -m bench.placement

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage
