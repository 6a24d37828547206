# One command each: `make dev` runs the main job, `make test` the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# pytest workers for `make test`: one per core (at least 2: most tests wait on processes).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -lt 2 ] && n=2; echo $$n)

.PHONY: install system-packages dev check test bench proto clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --group dev -e .
	# The wheels the runner builds functions' environments from: nothing is downloaded later.
	$(BIN)/python -m pip download --quiet --dest $(VENV)/wheelhouse "fdk==0.1.128"
	touch $@

install: system-packages $(BIN)/.installed

# The functions' sandbox needs bubblewrap (Debian's `bubblewrap`): installed here when this runs
# as root with apt-get (CI, a fresh machine); otherwise a warning says how to install it.
system-packages:
	@if [ "$$(uname -s)" = Linux ] && ! command -v bwrap >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing bubblewrap (the functions' sandbox)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
		else \
			echo "WARNING: bubblewrap is not installed; function processes would run without" \
				"their sandbox. Install it: sudo apt-get install bubblewrap" >&2; \
		fi; \
	fi

# A load balancer and three runners on this machine, serving the example functions.
dev: install
	RUNNERPOOL_WHEELHOUSE=$(VENV)/wheelhouse $(BIN)/runnerpool dev

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: check
	rm -f .coverage .coverage.*
	# One pytest worker per core (pytest-xdist); coverage follows the workers as it follows
	# every Python subprocess (patch = subprocess in pyproject.toml).
	$(BIN)/coverage run -m pytest -n $(TEST_WORKERS)
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
