# Everything runs from a local virtualenv that `make` creates on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,airflow]'  # airflow: tests/test_airflow.py runs DAGs in-process
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check runner tests bench
	$(BIN)/ruff format --check runner tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/celonis-runner validate jobs.yaml
	$(BIN)/celonis-runner plan jobs.yaml
	$(BIN)/celonis-runner run jobs.yaml --emulator --scenario examples/scenarios/demo.yaml \
		--log-format console --report .celonis-runner/demo-report.json

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/makespan.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
