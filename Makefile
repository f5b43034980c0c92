# Everything a fresh clone needs: `make run` and `make test` create the
# environment from the lock file on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
DEMO ?= pipelines/examples/demo.yaml

.PHONY: install run demo test check fmt lock bench clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@# Bytecode up front: machines that set PYTHONDONTWRITEBYTECODE would otherwise
	@# recompile the project on every `elx` start.
	@$(BIN)/python -m compileall -q runtime actors >/dev/null
	@touch $(STAMP)

# The daemon in the foreground: Ctrl-C (or `elx shutdown`) drains and stops it.
run: install
	$(BIN)/elx daemon

demo: install
	$(BIN)/elx run $(DEMO)

test: install check
	$(BIN)/pytest

check: install
	$(BIN)/ruff format --check runtime actors tests bench
	$(BIN)/ruff check runtime actors tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff format runtime actors tests bench
	$(BIN)/ruff check --fix runtime actors tests bench

# Re-resolve the lock file after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--generate-hashes --quiet -o requirements.lock

bench: install
	$(BIN)/python bench/pipeline_bench.py
	$(BIN)/python bench/provider_bench.py
	$(BIN)/python bench/supervision_bench.py
	$(BIN)/python bench/socket_bench.py
	$(BIN)/python bench/daemon_bench.py
	$(BIN)/python bench/telemetry_bench.py
	$(BIN)/python bench/optimizer_bench.py
	$(BIN)/python bench/ray_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
