# Everything runs from a local virtualenv that `make` creates on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test test-slow test-lowest test-tools test-airflow-deployment tools lint demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint,tls,airflow]'  # airflow: tests/test_airflow.py runs DAGs in-process
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check runner tests bench .ci
	$(BIN)/ruff format --check runner tests bench .ci
	$(BIN)/mypy
	$(BIN)/python .ci/check_function_length.py runner --max-lines 60
	$(BIN)/python .ci/check_complexity.py runner --max 10

# Four workers on two cores: most tests wait on an emulator or a subprocess, not the CPU.
WORKERS ?= 4

test: lint
	$(BIN)/python -m pytest -n $(WORKERS) -m "not slow and not tools and not airflow_deployment"

# What users' own tools make of our outputs: yaml-language-server, mermaid-cli, headless
# Chromium and the JUnit readers, installed into .tools/ and the venv (.ci/install-tools).
tools: $(STAMP)
	.ci/install-tools

test-tools: tools
	$(BIN)/python -m pytest -m tools

# The end-to-end matrices that take minutes (kills and resumes under stale statuses, ...).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# A real Airflow deployment (api-server, scheduler, dag-processor, triggerer; LocalExecutor,
# SQLite) against the emulator: minutes, so not part of `make test` (pyproject's addopts).
test-airflow-deployment: $(STAMP)
	$(BIN)/python -m pytest -m airflow_deployment tests/test_airflow_deployment.py

# The suite again, with every declared dependency at its lowest declared version.
LOWEST := .venv-lowest
test-lowest:
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) .ci/lowest_constraints.py test tls > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install --quiet -c $(LOWEST)/constraints.txt -e '.[test,tls]'
	$(LOWEST)/bin/python -m pip list --format=freeze | grep -iE '^(pyyaml|jsonschema|requests|structlog|urllib3|pytest|pytest-xdist|cryptography)=='
	$(LOWEST)/bin/python -m pytest -p no:cacheprovider -n $(WORKERS) -m "not slow and not tools and not airflow_deployment"

# The demo needs only the package (no test, lint or Airflow extras).
DEMO_STAMP := $(VENV)/.demo-installed
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/celonis-runner validate jobs.yaml
	$(BIN)/celonis-runner plan jobs.yaml
	$(BIN)/celonis-runner run jobs.yaml --emulator --scenario examples/scenarios/demo.yaml \
		--log-format console --report .celonis-runner/demo-report.json

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,tls,bench]'
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/diff.py
	$(BIN)/python bench/makespan.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/emulator.py
	$(BIN)/python bench/state_bytes.py
	$(BIN)/python bench/http_request.py
	$(BIN)/python bench/run_cli.py

clean:
	rm -rf $(VENV) $(LOWEST) build dist .mypy_cache .pytest_cache .ruff_cache
