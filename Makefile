# recipe-runner: `make train RECIPE=recipes/quickstart.yaml` and `make test` are all a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP_DIR := $(VENV)/llama.cpp
STAMP := $(VENV)/.setup-done
RECIPE ?= recipes/quickstart.yaml
ARGS ?=

# Axolotl and friends send telemetry by default; nothing here should reach the network.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_DISABLED := true
export WANDB_MODE := disabled
export AXOLOTL_DO_NOT_TRACK := 1
export DO_NOT_TRACK := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup train test test-fast lint format bench golden clean help

help:
	@echo "make setup                       create .venv with everything (idempotent)"
	@echo "make train RECIPE=recipes/x.yaml run a recipe end to end"
	@echo "make test                        run the test suite"
	@echo "make lint                        ruff check + format check"
	@echo "make bench                       benchmarks, printed as numbers"
	@echo "make golden                      refresh golden files after an intended change"

setup: $(STAMP)

# The stamp depends on what decides the environment, so a second run with nothing changed is instant.
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	@# llama.cpp's converter scripts, gguf-py and vocab-only tokenizer files ship in the sdist only.
	@if [ ! -f $(LLAMA_CPP_DIR)/convert_hf_to_gguf.py ]; then \
		set -e; tmp=$$(mktemp -d); \
		$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: \
			llama-cpp-python==$(LLAMA_CPP_VERSION) -d $$tmp; \
		tar -xzf $$tmp/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz -C $$tmp; \
		rm -rf $(LLAMA_CPP_DIR); \
		mv $$tmp/llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp $(LLAMA_CPP_DIR); \
		rm -rf $$tmp; \
	fi
	@# Byte-compile everything once. Where PYTHONDONTWRITEBYTECODE is set (these machines and CI),
	@# pip writes no .pyc and every process (recipe, Axolotl, each llama.cpp child, each test
	@# worker) compiles transformers, torch and Axolotl from source again: importing transformers
	@# took 5.6 s instead of 2.0 s. A few vendored Python 2 files do not compile; they are never
	@# imported.
	@$(BIN)/python -m compileall -q -j 0 $(VENV) runner >/dev/null 2>&1 || true
	@touch $@

train: setup
	$(BIN)/recipe run $(RECIPE) $(ARGS)

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q --durations=25 $(ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m bench

golden: setup
	REFRESH_GOLDEN=1 $(BIN)/python -m pytest -q tests/train/test_golden.py tests/compute/test_submissions.py \
		tests/export/test_modelfile_golden.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
