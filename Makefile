# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-js lint typecheck bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/roomcast serve --demo

# Tests start their own redis-server and Sentinel processes on free ports; on a
# fresh Debian machine the binary comes from Debian's package.
# The JavaScript client's tests need Node.js and npm.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

system-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (Debian package)"; \
	  apt-get update -qq && $(APT_INSTALL) redis-server; }
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing nodejs and npm (Debian packages)"; \
	  apt-get update -qq && $(APT_INSTALL) nodejs npm; }

clients/js/node_modules: clients/js/package-lock.json | system-deps
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error
	touch clients/js/node_modules

test-js: $(STAMP) clients/js/node_modules
	cd clients/js && npm test

test: $(STAMP) system-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-js

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

# The benchmark suite (about 10 minutes): roomcast against Node socket.io and plain
# python-socketio; writes docs/benchmarks.md and its plots in docs/img/. The Node
# peer's packages are installed by the suite (npm ci). Other benchmark runs on the
# same machine should not overlap: `flock /tmp/roomcast-bench.lock make bench`.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) system-deps
	$(BIN)/python benchmarks/suite.py --output docs/benchmarks.md

clean:
	rm -rf $(VENV) build src/*.egg-info
