# eventscale: `make run` and `make test` are the only set-up commands a user needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 6443
CERTS ?= certs
LOCAL_DIR ?= manifests/examples/local
PYTEST_ARGS ?=

.PHONY: run test lint bench certs manifests clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "first run: installing eventscale and its dependencies into $(VENV) (about a minute)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -e '.[dev]'
	touch $@

certs: $(VENV)/.installed
	$(PY) -m adapter certs --cert-dir $(CERTS) --port $(PORT)

run: certs
	$(PY) -m adapter serve --local-dir $(LOCAL_DIR) --cert-dir $(CERTS) --secure-port $(PORT)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check adapter scalers tests
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) -m tests.bench

manifests: certs
	$(PY) -m adapter manifests --cert-dir $(CERTS) --out manifests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
