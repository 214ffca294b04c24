# EOMS: two commands on a fresh machine.
#   make run   create .venv, install, load the demo company once, serve http://127.0.0.1:8000
#   make test  create .venv, install with test tools, make sure Debian's Chromium and oathtool are there, run the suite on SQLite
# Also: make lint (ruff, import contracts), make ci (the whole CI script, as CI runs it).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ADDR ?= 127.0.0.1:8000
EOMS_CHROMIUM ?= /usr/bin/chromium
# The suite runs on every core (pytest-xdist, one test database per worker); the chaos tests, which stop
# RabbitMQ under everyone's feet, then run alone (PYTEST_SERIAL= leaves them out).
PYTEST_ARGS ?= -q -n auto
PYTEST_SERIAL ?= -q -m broker_chaos

.PHONY: run test lint ci chromium oathtool

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per set of extras; installing again after pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[postgres]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,postgres]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/eoms demo
	@echo ""
	@echo "EOMS is starting at http://$(ADDR)/ (Ctrl-C stops it); sign in with a login above."
	$(BIN)/eoms run $(ADDR)

# Browser tests drive Debian's Chromium (never a downloaded browser): install it when it is missing.
chromium:
	@if [ -x "$(EOMS_CHROMIUM)" ]; then exit 0; fi; \
	if [ "$(EOMS_CHROMIUM)" = /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "The browser tests need Chromium at $(EOMS_CHROMIUM). As root run 'apt-get install chromium'" >&2; \
		echo "(or 'sudo apt-get install chromium'), or point EOMS_CHROMIUM at another Chromium binary." >&2; \
		exit 1; \
	fi

# The TOTP tests check our codes against Debian's oathtool, an independent implementation.
oathtool:
	@if command -v oathtool >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's oathtool for the two-factor tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq oathtool; \
	else \
		echo "The two-factor tests compare codes with Debian's oathtool: as root run 'apt-get install oathtool'" >&2; \
		echo "(or 'sudo apt-get install oathtool'); without it those tests are skipped (outside CI)." >&2; \
	fi

test: $(VENV)/.installed-test chromium oathtool
	env -u DATABASE_URL -u REDIS_URL EOMS_CHROMIUM=$(EOMS_CHROMIUM) $(BIN)/pytest $(PYTEST_ARGS)
	$(if $(strip $(PYTEST_SERIAL)),env -u DATABASE_URL -u REDIS_URL EOMS_CHROMIUM=$(EOMS_CHROMIUM) $(BIN)/pytest $(PYTEST_SERIAL))

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

ci:
	bash .ci/run
