# Two commands: `make run` starts the service, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: run test install install-test lint format bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(VENV)/bin/python
	$(PIP) install --quiet -e .

install-test: $(VENV)/bin/python
	$(PIP) install --quiet -e '.[test]'

run: install
	$(VENV)/bin/patientgen serve --host 127.0.0.1 --port 8000 --workers 1

test: install-test
	sh scripts/ensure-browser.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy patientgen

format: install-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install-test
	$(PY) bench/generation.py

clean:
	rm -rf $(VENV) patientgen-data .pytest_cache .ruff_cache .mypy_cache
