# chatstack: `make speedrun` trains the tiny recipe end to end; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install speedrun test lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[data,eval,serve,dev]"
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
