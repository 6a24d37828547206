# One command each: `make dev` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install dev check test bench proto clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --group dev -e .
	# The wheels the runner builds functions' environments from: nothing is downloaded later.
	$(BIN)/python -m pip download --quiet --dest $(VENV)/wheelhouse "fdk==0.1.128"
	touch $@

install: $(BIN)/.installed

# A load balancer and three runners on this machine, serving the example functions.
dev: install
	RUNNERPOOL_WHEELHOUSE=$(VENV)/wheelhouse $(BIN)/runnerpool dev

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: check
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

bench: install
	$(BIN)/python -m bench.placement

# Regenerate the committed protobuf and gRPC code from runner.proto.
proto: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -I src \
		--python_out=src --mypy_out=src --grpclib_python_out=src \
		src/runnerpool/rpc/_proto/runner.proto

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage
