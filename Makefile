# Two commands do all set-up on a fresh machine (Python >= 3.11):
#   make demo   installs imdshunt (runtime dependencies only) into .venv and hunts a generated
#               synthetic organisation
#   make test   installs imdshunt with its test extras into .venv and runs the whole suite
# Both install exact versions with their hashes from requirements/*.lock (make lock writes them),
# so a fresh machine runs what CI ran; users who `pip install imdshunt` get the current releases
# that pyproject.toml's ranges allow, and `make test-latest` runs the suite on those.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
LATEST_VENV ?= .venv-latest

# The venv is made once; each target then installs what it needs into it. `make demo` installs
# imdshunt and its runtime dependencies only; `make test` adds the test extras (pytest, moto,
# playwright, pyspark ...). The stamps say what is installed, so neither target reinstalls
# (or re-creates the venv) unless pyproject.toml or a lock changed, and `make demo` after
# `make test` installs nothing. The project itself goes in last, without dependencies and with
# the locked build backend (hatchling), because pip refuses an editable requirement in
# hash-checking mode.
$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-demo: pyproject.toml requirements/runtime.lock | $(PY)
	$(PY) -m pip install -q --require-hashes -r requirements/runtime.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# (name kept: contributors run `make .venv/.installed` to set up a test environment)
$(VENV)/.installed: pyproject.toml requirements/test.lock | $(PY)
	$(PY) -m pip install -q --require-hashes -r requirements/test.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.installed-demo

# Debian's Chromium for the report's browser tests (pytest -m browser); skipped quickly when it
# is already there, and never fatal where apt-get is absent (the browser tests then skip).
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "warning: could not install Chromium; browser tests will skip" >&2

.PHONY: demo test test-latest lock lint bench
demo: $(VENV)/.installed-demo
	$(VENV)/bin/imdshunt demo

# One pytest worker per core (pytest-xdist), a test file's tests on one worker (their
# module-scoped fixtures, such as a generated organisation, are made once). Run a single test
# file with `.venv/bin/python -m pytest tests/...`.
test: $(VENV)/.installed chromium
	$(PY) -m pytest -n auto --dist loadfile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench

bench: $(VENV)/.installed
	$(PY) bench/run.py

# Regenerate the locks after changing a dependency range in pyproject.toml, or to move the tested
# versions forward (say why in the commit). requirements/lock-constraints.txt holds what the
# lock holds back, each line with its reason. uv resolves for every platform (--universal) with
# the hashes of every published file.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --generate-hashes --python-version 3.11
lock: | $(PY)
	$(PY) -m pip install -q uv
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra test \
	  -c requirements/lock-constraints.txt -o requirements/test.lock
	$(UV_COMPILE) pyproject.toml requirements/build.in -c requirements/test.lock \
	  -o requirements/runtime.lock

# The suite on the newest releases pyproject.toml's ranges allow, in a venv of its own: drift
# shows here on purpose (tests that cannot run on a pair of releases say why when they skip).
test-latest: chromium
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[test]'
	$(LATEST_VENV)/bin/python -m pip list --format=freeze | grep -iE '^(boto3|botocore|moto|duckdb|pyspark)=='
	$(LATEST_VENV)/bin/python -m pytest
