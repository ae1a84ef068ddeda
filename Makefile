# The two set-up commands in the README: `make demo` and `make test`. Both create .venv
# first, so they work on a fresh machine. `make demo` installs the package with its runtime
# dependencies only (four, with pip's progress shown); `make test` adds the dev and ray
# extras (the Ray tests, tests/cluster, start a local Ray of their own).
# Another Python in a virtualenv of its own: `make test PYTHON=python3.13 VENV=.venv-3.13`
# (.ci/run does this for every Python the package supports).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench soak docs screenshots clean

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "installing osiiso_mp and its runtime dependencies into $(VENV)"
	$(PY) -m pip install --progress-bar on -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	@echo "installing the dev and ray extras into $(VENV) (a few minutes the first time)"
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

demo: $(RUNTIME)
	$(PY) -m osiiso_mp demo

# Two test processes (pytest-xdist): most tests wait on workers, and two keep a 2-core
# machine busy; everything that uses Ray runs in one of them (tests/conftest.py).
TEST_PROCS ?= 2

test: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(PY) -m pytest -q -n $(TEST_PROCS) --dist loadgroup

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict osiiso_mp tests examples

check: test lint typecheck

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) benchmarks/harness.py
	$(PY) benchmarks/bench_busy_caller.py
	$(PY) benchmarks/bench_sustained.py
	$(PY) benchmarks/bench_floors.py
	$(PY) benchmarks/bench_shapes.py
	$(PY) benchmarks/bench_checkpoint.py

soak: $(STAMP)
	OSIISO_SOAK_TASKS=100000 $(PY) -m pytest -q -m soak

# The docs site (mkdocs.yml): strict, so a broken link or reference fails the build.
# NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner, which is not a warning
# about the site.
docs: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The screenshots in docs/images (docs/gallery.md), by headless Chromium: needs `chromium`
# on the PATH (apt-get install chromium).
screenshots: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,docs,screenshots]'
	$(PY) docs/_screenshots.py

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .mypy_cache .ruff_cache build dist site *.egg-info
