# Atelier: `make up` runs the platform on this machine, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := contracts/pyproject.toml $(wildcard services/*/pyproject.toml) deploy/local/pyproject.toml

.PHONY: install up test lint fmt unit integration e2e bench clean

$(STAMP): requirements-dev.txt $(PACKAGES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/atelier-up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy contracts/src services/*/src deploy/local/src bench

test: lint
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install
	$(BIN)/python -m pytest tests/integration

e2e: install
	$(BIN)/python -m pytest tests/e2e

bench: install
	$(BIN)/python -m bench.e2e
	$(BIN)/python -m bench
	$(BIN)/python -m bench.router
	$(BIN)/python -m bench.router_http
	$(BIN)/python -m bench.media
	$(BIN)/python -m bench.package
	$(BIN)/python -m bench.composite
	$(BIN)/python -m bench.blobstore
	$(BIN)/python -m bench.progress
	$(BIN)/python -m bench.streams
	$(BIN)/python -m bench.faststream_seam
	$(BIN)/python -m bench.episode
	$(BIN)/atelier eval golden --primary fake --out golden-fake.csv --max-p95-s 12 --max-failures 0.03 --min-fallback 0.9

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .state .mypy_cache .ruff_cache .pytest_cache
