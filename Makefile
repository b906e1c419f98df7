# Set-up and checks. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.enc_tf-installed
DEMO_STAMP := $(VENV)/.enc_tf-demo-installed

.PHONY: test lint demo install clean-venv bench

# (Re)install when the venv is missing or the package metadata changed. The demo needs only
# the package and its exporters (the `demo` extra); the tests need the `dev` extra (torch,
# timm, the serving API, ... for the reference comparisons).
$(STAMP): pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[dev]"
	@touch $@ $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[demo]"
	@touch $@

install: $(STAMP)

# The main job: train EncNet on the built-in ContextShapes dataset to a time budget, evaluate
# and export it, and print its per-class IoU (docs/demo.md: minutes and scores per machine).
demo: $(DEMO_STAMP)
	$(VENV)/bin/enc-demo

# Two pytest processes (pytest-xdist), a test module per process at a time, so that its shared
# fixtures are built once; TEST_WORKERS=1 runs the suite in one.
TEST_WORKERS ?= 2
test: $(STAMP) lint
	TF_CPP_MIN_LOG_LEVEL=2 $(VPY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) \
		--dist loadscope --durations=15 tests

# ruff: pyflakes, pycodestyle (line length 100) and isort order; the formatter's layout.
lint: $(STAMP)
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .

bench: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(VPY) benchmarks/encoding.py
	TF_CPP_MIN_LOG_LEVEL=2 $(VPY) benchmarks/inference.py
	TF_CPP_MIN_LOG_LEVEL=2 $(VPY) benchmarks/data.py

clean-venv:
	rm -rf $(VENV)
