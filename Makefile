# chatstack: `make speedrun` trains the tiny recipe end to end; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# llama-cpp-python (dev extra) compiles llama.cpp: only the shared library (no mtmd/llava), for
# AVX2 CPUs rather than -march=native, which on AMX Xeons enables kernels that segfault on Q8_0
# (README, Export). pip caches the built wheel, so only the first install pays the build.
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

.PHONY: install speedrun test lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q -e ".[data,eval,serve,track,dev]"
	if [ -f scripts/install_browser.sh ]; then bash scripts/install_browser.sh; fi
	touch $(STAMP)

install: $(STAMP)

speedrun: install
	$(VENV)/bin/chatstack speedrun --recipe tiny

test: install
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

# rewrites files: the import order and other safe fixes, then the formatter's layout
format: install
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf outputs
