# Two commands: `make run` starts the service, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The suite runs in this many processes (pytest-xdist), one test file per process at a time:
# many tests wait on leases, subprocesses, the browser and the network, so even on 2 cores a
# third process shortens it (the API, web and hostile tests: 290 s in 2 processes, using 0.9 of
# the 2 cores; 185 s in 3). A fourth does not: the whole suite keeps both cores busy with 3
# (2026-12-06: 780 s with 3, 845 s with 4).
TEST_PROCESSES ?= 3
# A worker that crashes ends the run (the crashed test named as failed): xdist's replacement of
# a crashed worker under --dist loadfile can wait forever for work it never hands out (xdist
# issues 784 and 1323), which ran a CI run into its time limit.
XDIST_OPTIONS := -n $(TEST_PROCESSES) --dist loadfile --max-worker-restart 0
PORT   ?= 8000

.PHONY: run test install install-test lint format bench bench-queue bench-api bench-load bench-peers bench-faults bench-instructions clean

$(VENV)/bin/python:
	@echo "== creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Not quiet: the first install takes minutes, and pip says what it fetches and installs.
install: $(VENV)/bin/python
	@echo "== installing patientgen and its dependencies into $(VENV) (minutes the first time)"
	$(PIP) install --progress-bar off -e .
	@echo "== installed"

install-test: $(VENV)/bin/python
	$(PIP) install --quiet -e '.[test]'

# make run PORT=8080 for another port
run: install
	@echo "== starting the service on http://127.0.0.1:$(PORT)/ (Ctrl-C stops it)"
	$(VENV)/bin/patientgen serve --host 127.0.0.1 --port $(PORT) --workers 1

test: install-test
	sh scripts/ensure-browser.sh
	sh scripts/ensure-faketime.sh
	sh scripts/ensure-fhir-validator.sh
	sh scripts/ensure-ceph.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(XDIST_OPTIONS)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy patientgen bench

format: install-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install-test
	$(PY) bench/generation.py

bench-queue: install-test
	$(PY) bench/queue_throughput.py

bench-api: install-test
	$(PY) bench/api.py

bench-load: install-test
	$(PY) bench/load.py

bench-faults: install-test
	$(PY) bench/faults.py

# Instructions per patient of the hot paths under callgrind (needs valgrind).
bench-instructions: install-test
	$(PY) bench/instructions.py

# The peers (procrastinate, pgqueuer) live only in the benchmark's own venv, never in the project's.
bench-peers: install
	$(PYTHON) -m venv bench/.venv-peers
	bench/.venv-peers/bin/pip install --quiet -e . -r bench/peers-requirements.txt
	bench/.venv-peers/bin/python bench/peers.py

clean:
	rm -rf $(VENV) patientgen-data .pytest_cache .ruff_cache .mypy_cache
