# eventscale: `make run` and `make test` are the only set-up commands a user needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 6443
CERTS ?= certs
LOCAL_DIR ?= manifests/examples/local
PYTEST_ARGS ?=
# dev-cluster: where the cluster reaches the adapter run here, and what the adapter listens on
ADVERTISE ?= 127.0.0.1:$(PORT)
BIND ?= 127.0.0.1

.PHONY: run test lint bench certs manifests bundle dev-cluster clean

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

# adapter/install/bundle.yaml (what `eventscale install` applies) = kubectl kustomize manifests/;
# kubectl from PATH, else the one the e2e tests build
bundle: $(VENV)/.installed
	kubectl=$$(command -v kubectl || echo "$$($(PY) -c 'import sys; sys.path.insert(0, "tests/cluster"); \
	  from controlplane import ensure_binaries; print(ensure_binaries())')/kubectl"); \
	{ head -n 3 adapter/install/bundle.yaml; "$$kubectl" kustomize manifests; } > adapter/install/bundle.yaml.new
	mv adapter/install/bundle.yaml.new adapter/install/bundle.yaml

# the cluster of $$KUBECONFIG (current context) sends external.metrics.k8s.io to `serve` run here
dev-cluster: certs
	$(PY) -m adapter dev-cluster --advertise-address $(ADVERTISE) --cert-dir $(CERTS) --wait-timeout 0
	$(PY) -m adapter serve --cert-dir $(CERTS) --secure-port $(PORT) --bind-address $(BIND)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
