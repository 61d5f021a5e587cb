# mlcycle — every target sets itself up; `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
LOCK := requirements/dev.lock
# The stamp covers the bytecode step too ("pyc"), so a venv set up before it gets its bytecode once.
STAMP := $(VENV)/.installed-$(shell (cat $(LOCK) pyproject.toml; echo pyc) 2>/dev/null | sha256sum | cut -c1-12)
ROWS ?= 20000
MODEL ?= fraud-detector
HTTP_PORT ?= 8080
GRPC_PORT ?= 8081
DRIFT_PORT ?= 8090
PYTEST_ARGS ?=
# Images (make images): where they are tagged, and the Python base. PYTHON_IMAGE empty: a base made here from Debian
# packages (no registry needed); PYTHON_IMAGE=upstream: the Dockerfile's python:3.11-slim-bookworm pinned by digest.
IMAGE_REGISTRY ?= ghcr.io/mlcycle
IMAGE_TAG ?=
PYTHON_IMAGE ?=
# make compile PIPELINE_IMAGE=<registry>/mlcycle-pipeline@sha256:... DRIFT_IMAGE=...: the images you pushed
PIPELINE_IMAGE ?=
DRIFT_IMAGE ?=

.PHONY: images base-image docker-down lint setup demo demo-minio serve traffic canary-demo loop-demo kind-up kind-down cluster-up cluster-down control-plane test test-unit compile minio lock bench clean help

help:
	@echo "make demo     run the whole training lifecycle locally (kfp.local, bundled data, local registry)"
	@echo "make test     install everything, build/find MinIO, run the test suite"
	@echo "make serve    serve the production model (KServe predictor + drift detector) on :8080/:8081/:8090"
	@echo "make traffic  send normal then drifted traffic to 'make serve' and print the drift report"
	@echo "make canary-demo  canary rollout locally: promote a good candidate, roll back a broken one"
	@echo "make loop-demo    the closed loop: drift + late labels -> retrain -> shadow -> canary -> promote; a stale candidate stopped"
	@echo "make cluster-up   local Kubernetes control plane + KServe (no Docker); kubeconfig .mlcycle/cluster/kubeconfig"
	@echo "make images   build every image (pipeline, drift, serving, capture, storage-initializer) in a Docker daemon"
	@echo "make compile  write the compiled KFP pipeline YAML to build/pipelines/ (PIPELINE_IMAGE=/DRIFT_IMAGE= your pushed images)"
	@echo "make bench    run the benchmarks (JSON under bench/results/)"

# uv compiles no bytecode, and with PYTHONDONTWRITEBYTECODE set Python caches none: every kfp.local step (a
# fresh interpreter) then recompiled kfp, pandas, scikit-learn... from source. compileall writes the .pyc
# files once; files that do not compile (never importable anyway) are skipped.
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) -r $(LOCK)
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	$(PY) -m compileall -qq -j0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') || true
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/mlcycle demo --rows $(ROWS)

# The same demo against a real local MinIO server (started for the run, data kept in .mlcycle/minio).
demo-minio: setup
	MINIO_BIN=$$(scripts/ensure-minio.sh) $(PY) -m devtools.minio -- $(VENV)/bin/mlcycle demo --rows $(ROWS) --registry s3://mlcycle-models

# Ports: make serve HTTP_PORT=9080 GRPC_PORT=9081 DRIFT_PORT=9090. SIGINT/SIGTERM stops both servers.
serve: setup
	@test -f .mlcycle/registry/$(MODEL)/_aliases.json || $(MAKE) demo
	exec $(VENV)/bin/mlcycle serve --registry .mlcycle/registry --model $(MODEL) --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --drift-port $(DRIFT_PORT)

canary-demo: setup
	@scripts/ensure-prometheus.sh >/dev/null
	@test -f .mlcycle/registry/fraud-detector/_aliases.json || $(MAKE) demo
	$(PY) -m pipelines.canary_demo --registry .mlcycle/registry

# The closed loop, locally: drift and falling online accuracy -> retrain on captured, labelled traffic ->
# candidate -> shadow -> canary -> promotion; a stale candidate stopped at the shadow stage (real servers, no cluster).
loop-demo: setup
	@scripts/ensure-prometheus.sh >/dev/null
	$(PY) -m pipelines.loop_demo

traffic: setup
	$(PY) -m inference.traffic --rows $${TRAFFIC_ROWS:-1000} --predictor http://127.0.0.1:$(HTTP_PORT) --drift http://127.0.0.1:$(DRIFT_PORT) --model $(MODEL)

minio:
	@scripts/ensure-minio.sh

# A local kind cluster with KServe, KFP, MinIO and Prometheus (needs docker, kind, kubectl, helm).
kind-up:
	scripts/kind-up.sh

kind-down:
	scripts/kind-down.sh

# A local control plane without Docker: etcd, kube-apiserver, controller-manager, scheduler, KWOK (one
# simulated node) and KServe's controller with its webhooks; built from pinned Go modules on first use.
control-plane:
	@scripts/ensure-control-plane.sh >/dev/null

cluster-up: setup control-plane
	$(PY) -m devtools.cluster up --dir .mlcycle/cluster

cluster-down: setup
	$(PY) -m devtools.cluster down --dir .mlcycle/cluster

# Images, built for real (Dockerfile, one target per role). The Docker daemon: yours ($$DOCKER_HOST or the default
# socket), else the project's private one (scripts/docker-engine.sh: Debian's docker.io, data under ~/.cache/mlcycle),
# which stays up so you can use the images; `make docker-down` stops it.
IMAGE_ENV = IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG) PYTHON_IMAGE=$(PYTHON_IMAGE)
images:
	@line=$$(scripts/docker-engine.sh up) && export "$$line" && $(IMAGE_ENV) scripts/build-images.sh

base-image:
	@line=$$(scripts/docker-engine.sh up) && export "$$line" && scripts/base-image.sh

docker-down:
	@scripts/docker-engine.sh down

# Lint and types first (seconds): ruff's rules and format at 120 columns, mypy over the core library, actionlint
# over the release workflow.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$$(scripts/ensure-actionlint.sh) .github/workflows/*.yml

# The images are built (or found cached) first, under the references the manifests name, in the daemon the container
# tier then uses; a private daemon this target started is stopped at the end, however pytest ends.
test: setup control-plane lint
	MINIO_BIN=$$(scripts/ensure-minio.sh) && PROMETHEUS_BIN=$$(scripts/ensure-prometheus.sh) && \
	  MINIO_BIN=$$MINIO_BIN PROMETHEUS_BIN=$$PROMETHEUS_BIN MLCYCLE_CONTAINER_TESTS=1 PYTHON_IMAGE=$(PYTHON_IMAGE) \
	  scripts/docker-engine.sh run scripts/build-images.sh --then $(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

compile: setup
	$(if $(PIPELINE_IMAGE),MLCYCLE_PIPELINE_IMAGE=$(PIPELINE_IMAGE)) $(if $(DRIFT_IMAGE),MLCYCLE_DRIFT_IMAGE=$(DRIFT_IMAGE)) \
	  $(PY) -m pipelines.compile --out build/pipelines

# Re-resolve the lock files after editing pyproject.toml.
lock:
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock -q
	for role in pipeline serving capture; do $(VENV)/bin/uv pip compile pyproject.toml --extra $$role --python-version 3.11 -c requirements/dev.lock -o requirements/$$role.lock -q; done
	$(VENV)/bin/uv pip compile pyproject.toml --extra pipeline --extra serving --extra drift --python-version 3.11 -c requirements/dev.lock -o requirements/drift.lock -q
	$(VENV)/bin/uv pip compile requirements/storage-initializer.in --python-version 3.11 -c requirements/dev.lock -o requirements/storage-initializer.lock -q

bench: setup
	MINIO_BIN=$$(scripts/ensure-minio.sh) $(PY) bench/pipeline.py
	MINIO_BIN=$$(scripts/ensure-minio.sh) $(PY) bench/registry.py
	WRK_BIN=$$(scripts/ensure-wrk.sh) VEGETA_BIN=$$(scripts/ensure-vegeta.sh) GHZ_BIN=$$(scripts/ensure-ghz.sh) \
	  UV=$(VENV)/bin/uv MLSERVER_BIN=$$(UV=$(VENV)/bin/uv scripts/ensure-mlserver.sh) $(PY) bench/serving.py

clean:
	rm -rf build .mlcycle .pytest_cache
