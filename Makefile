# Two commands do all set-up on a fresh machine (Python >= 3.11):
#   make demo   installs imdshunt into .venv and hunts a bundled synthetic organisation
#   make test   installs imdshunt with its test extras into .venv and runs the whole suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Debian's Chromium for the report's browser tests (pytest -m browser); skipped quickly when it
# is already there, and never fatal where apt-get is absent (the browser tests then skip).
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "warning: could not install Chromium; browser tests will skip" >&2

.PHONY: demo test lint bench
demo: $(VENV)/.installed
	$(VENV)/bin/imdshunt demo

test: $(VENV)/.installed chromium
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench

bench: $(VENV)/.installed
	$(PY) bench/run.py
