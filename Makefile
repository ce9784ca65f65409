# `make run` tries Kiosque locally (demo mode); `make test` runs the whole suite.
# Both need only Python 3.11+, pip, node/npm; they install the rest into .venv and node_modules.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
HTMX := portal/static/vendor/htmx.min.js
CATALOGS := $(patsubst %.po,%.mo,$(wildcard portal/translations/*/LC_MESSAGES/messages.po))

.PHONY: setup run test translations clean

setup: $(BIN)/.installed $(HTMX) $(CATALOGS)

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# htmx is served by Kiosque itself, from its npm package: never a CDN, never committed.
$(HTMX): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	mkdir -p $(dir $@)
	cp node_modules/htmx.org/dist/htmx.min.js $@

%.mo: %.po $(BIN)/.installed
	$(BIN)/pybabel compile --use-fuzzy -i $< -o $@

# Refresh the catalogues after changing user-facing text.
translations: $(BIN)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ -o portal/translations/messages.pot .
	$(BIN)/pybabel update -i portal/translations/messages.pot -d portal/translations

# The demo is Kiosque with the sandbox mounted (sandbox/); it brings the database up to date itself.
run: setup
	PORTAL_ENV=development $(BIN)/flask --app sandbox demo --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/pytest

clean:
	rm -rf $(VENV) node_modules portal/static/vendor
