# Two commands do all set-up on a fresh machine (Python >= 3.11):
#   make demo   installs imdshunt (runtime dependencies only) into .venv and hunts a generated
#               synthetic organisation
#   make test   installs imdshunt with its test extras into .venv and runs the whole suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

# The venv is made once; each target then installs what it needs into it. `make demo` installs
# imdshunt and its runtime dependencies only; `make test` adds the test extras (pytest, moto,
# playwright, pyspark ...). The stamps say what is installed, so neither target reinstalls
# (or re-creates the venv) unless pyproject.toml changed, and `make demo` after `make test`
# installs nothing.
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

# (name kept: contributors run `make .venv/.installed` to set up a test environment)
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-demo

# Debian's Chromium for the report's browser tests (pytest -m browser); skipped quickly when it
# is already there, and never fatal where apt-get is absent (the browser tests then skip).
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "warning: could not install Chromium; browser tests will skip" >&2

.PHONY: demo test lint bench
demo: $(VENV)/.installed-demo
	$(VENV)/bin/imdshunt demo

test: $(VENV)/.installed chromium
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench

bench: $(VENV)/.installed
	$(PY) bench/run.py
