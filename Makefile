# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-js test-lowest lint typecheck bench clean system-deps venv-deps node-deps \
        browser-deps demo-assets

APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

# `python3 -m venv` needs ensurepip, which Debian ships separately (python3-venv) and
# a minimal image lacks.
venv-deps:
	@$(PYTHON) -c 'import ensurepip' >/dev/null 2>&1 || { \
	  echo "installing python3-venv (Debian package)"; \
	  apt-get update -qq && $(APT_INSTALL) python3-venv; }

$(BIN)/python: | venv-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The demo page's two JavaScript libraries (roomcast's client from clients/js and the
# stock socket.io-client's browser ESM build from its node_modules) are copied into the
# package's static/vendor/ (gitignored), so that a wheel built afterwards serves them
# too; run from this checkout, the demo serves clients/js directly. Nothing is fetched
# from a CDN: after `npm ci` the page works with no internet.
DEMO_VENDOR := src/roomcast/static/vendor
DEMO_ASSET  := $(DEMO_VENDOR)/socket.io-client/socket.io.esm.min.js
SIO_DIST    := clients/js/node_modules/socket.io-client/dist
JS_CLIENT_SOURCES := clients/js/package.json $(shell find clients/js -name '*.js' \
  -not -path 'clients/js/node_modules/*' -not -path 'clients/js/test*' 2>/dev/null)

$(DEMO_ASSET): clients/js/node_modules $(JS_CLIENT_SOURCES)
	rm -rf $(DEMO_VENDOR)
	mkdir -p $(DEMO_VENDOR)/socket.io-client $(DEMO_VENDOR)/roomcast-client
	cp $(SIO_DIST)/socket.io.esm.min.js $(SIO_DIST)/socket.io.esm.min.js.map \
	  clients/js/node_modules/socket.io-client/LICENSE $(DEMO_VENDOR)/socket.io-client/
	cd clients/js && cp --parents package.json $(patsubst clients/js/%,%,$(filter %.js,$(JS_CLIENT_SOURCES))) \
	  ../../$(DEMO_VENDOR)/roomcast-client/
	touch $@

demo-assets: $(DEMO_ASSET)

run: $(STAMP) $(DEMO_ASSET)
	$(BIN)/roomcast serve --demo

# Tests start their own redis-server and Sentinel processes on free ports; on a
# fresh Debian machine the binary comes from Debian's package.
# The JavaScript client's tests need Node.js and npm; tests/deploy runs its own nginx
# processes, so Debian's nginx is installed with its service left stopped (a
# policy-rc.d that forbids starting services, the one Debian's invoke-rc.d asks,
# unless the image has one already).
node-deps:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing nodejs and npm (Debian packages)"; \
	  apt-get update -qq && $(APT_INSTALL) nodejs npm; }

# tests/browser drives Debian's chromium through Playwright (the dev extra's
# `playwright`, pointed at /usr/bin/chromium: no `playwright install`, no download).
browser-deps:
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium (Debian package)"; \
	  apt-get update -qq && $(APT_INSTALL) chromium; }

system-deps: node-deps
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (Debian package)"; \
	  apt-get update -qq && $(APT_INSTALL) redis-server; }
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
	  echo "installing nginx (Debian package, service not started)"; \
	  made=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	    chmod +x /usr/sbin/policy-rc.d; made=1; fi; \
	  apt-get update -qq && $(APT_INSTALL) nginx; status=$$?; \
	  if [ -n "$$made" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	  exit $$status; }

clients/js/node_modules: clients/js/package-lock.json | node-deps
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error
	touch clients/js/node_modules

test-js: $(STAMP) system-deps clients/js/node_modules
	cd clients/js && npm test

test: $(STAMP) system-deps browser-deps clients/js/node_modules $(DEMO_ASSET)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-lowest
	$(MAKE) --no-print-directory test-js

# The transport tests (and tests/compat) with every dependency at its lower bound in
# pyproject.toml, so each `>=` there is a version that was run. The test tools are the
# dev extra's, at their newest. A separate venv, rebuilt when pyproject changes.
LOWEST       := .venv-lowest
LOWEST_BIN   := $(LOWEST)/bin
LOWEST_STAMP := $(LOWEST)/.installed
LOWEST_TOOLS := pytest pytest-asyncio pytest-timeout httpx
LOWEST_TESTS := tests/unit/test_wire_frames.py tests/e2e/test_wire.py \
                tests/e2e/test_serve_websocket.py tests/e2e/test_smoke.py \
                tests/e2e/test_connect.py $(wildcard tests/compat)

$(LOWEST_BIN)/python: | venv-deps
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST_BIN)/pip install -q --upgrade pip

$(LOWEST_STAMP): pyproject.toml tools/lowest_constraints.py | $(LOWEST_BIN)/python
	$(LOWEST_BIN)/python tools/lowest_constraints.py > $(LOWEST)/constraints.txt
	$(LOWEST_BIN)/python tools/lowest_constraints.py --dev $(LOWEST_TOOLS) > $(LOWEST)/tools.txt
	$(LOWEST_BIN)/pip install -q -c $(LOWEST)/constraints.txt -e . -r $(LOWEST)/tools.txt
	touch $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP) system-deps
	@echo "dependencies at their lower bounds: $$(tr '\n' ' ' < $(LOWEST)/constraints.txt)"
	$(LOWEST_BIN)/pytest -q $(LOWEST_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

# The benchmark suite (about 25 minutes): roomcast (both engines) against Node
# socket.io, plain python-socketio and the raw uvloop floor; writes docs/benchmarks.md and its plots in docs/img/. The Node
# peer's packages are installed by the suite (npm ci). Other benchmark runs on the
# same machine should not overlap: `flock /tmp/roomcast-bench.lock make bench`.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) system-deps
	$(BIN)/python benchmarks/suite.py --output docs/benchmarks.md

clean:
	rm -rf $(VENV) $(LOWEST) build src/*.egg-info $(DEMO_VENDOR)
