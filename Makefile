# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing and (re)installs the project when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

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

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
