# chatstack: `make speedrun` trains the tiny recipe end to end; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install speedrun test clean

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

clean:
	rm -rf outputs
