# Set-up and checks. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.enc_tf-installed

.PHONY: test lint demo install clean-venv bench

# (Re)install when the venv is missing or the package metadata changed.
$(STAMP): setup.cfg pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[dev]"
	@touch $@

install: $(STAMP)

# The main job: train EncNet on the built-in ContextShapes dataset, evaluate and export it, and
# print its per-class IoU (about 10 minutes on 2 cores, installation included).
demo: $(STAMP)
	$(VPY) -m enc_tf.demo

test: $(STAMP) lint
	TF_CPP_MIN_LOG_LEVEL=2 $(VPY) -m pytest -q -p no:cacheprovider --durations=15 tests

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
