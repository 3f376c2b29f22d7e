# The two commands a user needs: `make demo` and `make test`. Both create the virtual env
# (.venv) and install the pinned dependencies, the face engine included, on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: venv demo test check lint types unit integration infra bench synth clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-local.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## The main job: a local stack enrolling sample photos end to end.
demo: $(STAMP)
	$(VENV)/bin/enroll demo $(DEMO_ARGS)

## The gate CI runs: lint, types, then every test.
test: $(STAMP) lint types
	$(PY) -m pytest $(PYTEST_ARGS)

check: test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(VENV)/bin/mypy functions enroll_local infra app.py

unit: $(STAMP)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

infra: $(STAMP)
	$(PY) -m pytest -m infra $(PYTEST_ARGS)

## Benchmarks print their figures; they are not part of `make test`.
bench: $(STAMP)
	$(PY) -m tests.benchmarks.bench_engine $(BENCH_ARGS)
	$(PY) -m tests.benchmarks.calibrate

synth: $(STAMP)
	$(PY) app.py

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache
