# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing and (re)installs the project when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-mmaction2 test-browser test-trackers lint install clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "ispan needs Python >= 3.10"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# one OpenCV build only: the contrib one (cv2.optflow) replaces a plain one from before
	$(BIN)/python -m pip uninstall --quiet -y opencv-python-headless opencv-python 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# both builds were installed (they share cv2/): reinstall contrib's files over the removed ones
	$(BIN)/python -c 'import cv2; cv2.optflow' 2>/dev/null \
	  || $(BIN)/python -m pip install --quiet --force-reinstall --no-deps opencv-contrib-python-headless
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ispan classify samples/demo.mp4 --topk 5

lint: $(STAMP)
	$(BIN)/ruff check ispan_cli tests benchmarks
	$(BIN)/ruff format --check ispan_cli tests benchmarks

# In parallel (pytest-xdist, one worker per core up to 4; a module's tests stay on one worker so
# its servers and models start once): most of the time is subprocesses importing torch.
test: lint
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

# The import checked against MMAction2 1.2 itself: the `mmaction2` extra of pyproject.toml, installed
# with --no-deps so it cannot replace torch or numpy (checked before and after), then its tests.
MM_PINS = $(BIN)/python -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["mmaction2"]))'
MM_KEEP = $(BIN)/python -m pip freeze | grep -iE '^(torch|numpy)=='
test-mmaction2: $(STAMP)
	$(MM_KEEP) > $(VENV)/.keep-before
	$(BIN)/python -m pip install --quiet --no-deps $$($(MM_PINS))
	$(MM_KEEP) | diff $(VENV)/.keep-before - \
	  || (echo "error: installing mmaction2 changed torch or numpy (above)"; exit 1)
	$(BIN)/python -m pytest -q -m mmaction2 tests/importers

# The trackers for real: a real `mlflow server` on 127.0.0.1 and W&B offline; installed with the
# tested pins, torch and numpy held where they are (checked before and after).
TRACKER_PINS = tensorboard==2.21.0 mlflow==3.17.2 wandb==0.31.0
test-trackers: $(STAMP)
	$(MM_KEEP) > $(VENV)/.keep-before
	$(BIN)/python -m pip install --quiet $(TRACKER_PINS) -c $(VENV)/.keep-before
	$(MM_KEEP) | diff $(VENV)/.keep-before - \
	  || (echo "error: installing the trackers changed torch or numpy (above)"; exit 1)
	$(BIN)/python -m pytest -q -m 'tensorboard or mlflow or wandb' tests/engine/test_trackers.py

# The report in a real headless Chromium: `apt-get install -y chromium` first (Debian), or
# ISPAN_CHROMIUM=/path/to/chrome; Playwright from PyPI drives it (no browser download).
test-browser: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[browser]'
	$(BIN)/python -m pytest -q -m browser tests/engine/test_report_browser.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
