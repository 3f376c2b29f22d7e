# The two commands a user needs: `make demo` and `make test`. Both create the virtual env
# (.venv) and install the pinned dependencies, the face engine included, on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The functions' dependencies for Lambda (arm64, CPython 3.12), bundled into every function's
# asset; the stamp records the requirements.txt hash the synth checks (infra/lambda_deps.py).
LAMBDA_DEPS := build/lambda-deps/.bundle-stamp.json
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: venv demo test check lint types unit integration infra faults bench bench-load eval synth openapi lambda-deps clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-local.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## pip install requirements.txt for Lambda's platform into build/lambda-deps (needs PyPI; about
## 5-10 s). Runs once and again only when requirements.txt changes; synth and tests never download.
lambda-deps: $(LAMBDA_DEPS)

$(LAMBDA_DEPS): requirements.txt $(STAMP)
	$(PY) -m infra.lambda_deps

## The main job: a local stack enrolling sample photos end to end.
demo: $(STAMP)
	$(VENV)/bin/enroll demo $(DEMO_ARGS)

## The gate CI runs: lint, types, then every test.
# Test processes (pytest-xdist): each runs its own local stacks. `make test PYTEST_WORKERS=0`
# runs everything in one process.
PYTEST_WORKERS ?= auto

test: $(STAMP) $(LAMBDA_DEPS) lint types
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

check: test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(VENV)/bin/mypy functions enroll_local enroll_cli infra app.py

unit: $(STAMP)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

infra: $(STAMP) $(LAMBDA_DEPS)
	$(PY) -m pytest -m infra $(PYTEST_ARGS)

faults: $(STAMP)
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

## Benchmarks print their figures; they are not part of `make test`.
bench: $(STAMP)
	$(PY) -m tests.benchmarks.bench_engine $(BENCH_ARGS)
	$(PY) -m tests.benchmarks.calibrate

## The load benchmark (issue #9): 10,000 photos at the scaled Rekognition quota, a backfill and
## live uploads at once; writes docs/load-benchmark.{json,png} (about 35 minutes on 2 cores).
LOAD_ARGS ?= --photos 10000 --quota-scale 0.1
bench-load: $(STAMP)
	$(VENV)/bin/enroll bench load $(LOAD_ARGS) --json docs/load-benchmark.json --plot docs/load-benchmark.png

## Accuracy on real photos (issue #10): user vectors against face vectors, enrolling 3 photos per
## identity (`enroll eval --enroll K` for other K; docs/evaluation.md has K = 1, 2, 3, 5).
EVAL_PHOTOS ?= ../shared/data/faces
eval: $(STAMP)
	@test -d $(EVAL_PHOTOS) || { echo "make eval: needs $(EVAL_PHOTOS) (or: make eval EVAL_PHOTOS=DIR)"; exit 2; }
	mkdir -p .local-data/eval
	$(VENV)/bin/enroll eval --photos $(EVAL_PHOTOS) --enroll 3 --json .local-data/eval/eval.json --plot .local-data/eval/roc.png

synth: $(STAMP) $(LAMBDA_DEPS)
	$(PY) app.py

## Regenerate the query API's OpenAPI document from its code (a test fails when it is stale).
openapi: $(STAMP)
	$(PY) -m query_api.openapi

clean:
	rm -rf $(VENV) build cdk.out .pytest_cache .mypy_cache .ruff_cache
