# mlcycle images, one target per role so each carries only what it needs:
#   pipeline  — every training step (kfp, scikit-learn, xgboost-cpu, skops); no alibi-detect
#   drift     — the build_detector step and the drift detector service (adds alibi-detect, ~1 GB)
#   serving   — the KServe predictor runtime
# Build: docker build --target serving -t <registry>/mlcycle-serving:0.1.0 --build-arg CODE_VERSION=$(git rev-parse HEAD) .
# Dependencies come from the lock files (requirements/*.lock); nothing is pip-installed at run time.
# Installed with --compile-bytecode: PYTHONDONTWRITEBYTECODE=1 means a step never caches bytecode, and every
# pipeline step is a fresh interpreter, so without .pyc files each step recompiled its libraries from source.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
RUN pip install uv==0.13.9 && groupadd --gid 65532 mlcycle && useradd --uid 65532 --gid 65532 --no-create-home mlcycle
WORKDIR /app

# The project's source, once; every role copies it after installing its own locked dependencies.
FROM base AS src
COPY pyproject.toml README.md ./
COPY mlcycle ./mlcycle
COPY components ./components
COPY pipelines ./pipelines
COPY inference ./inference
COPY manifests/base/minio/policies ./manifests/base/minio/policies

FROM base AS pipeline
COPY requirements/pipeline.lock /tmp/requirements.lock
RUN uv pip install --system --no-cache --compile-bytecode -r /tmp/requirements.lock
COPY --from=src /app /app
RUN uv pip install --system --no-cache --compile-bytecode --no-deps . && python -m compileall -q /app
ARG CODE_VERSION=unknown
ENV MLCYCLE_CODE_VERSION=${CODE_VERSION} MLCYCLE_POLICY_DIR=/app/manifests/base/minio/policies
USER 65532:65532

FROM base AS drift
COPY requirements/drift.lock /tmp/requirements.lock
RUN uv pip install --system --no-cache --compile-bytecode -r /tmp/requirements.lock
COPY --from=src /app /app
# The compiled training pipeline the KFP retrain hook submits (--kfp_package); image references are pinned at
# build time the same way as for `make compile` (MLCYCLE_PIPELINE_IMAGE / MLCYCLE_DRIFT_IMAGE build args).
ARG MLCYCLE_PIPELINE_IMAGE
ARG MLCYCLE_DRIFT_IMAGE
RUN uv pip install --system --no-cache --compile-bytecode --no-deps . && python -m compileall -q /app \
    && env ${MLCYCLE_PIPELINE_IMAGE:+MLCYCLE_PIPELINE_IMAGE=$MLCYCLE_PIPELINE_IMAGE} \
       ${MLCYCLE_DRIFT_IMAGE:+MLCYCLE_DRIFT_IMAGE=$MLCYCLE_DRIFT_IMAGE} python -m pipelines.compile --out /app/pipelines \
    && test -s /app/pipelines/mlcycle-training.yaml
ARG CODE_VERSION=unknown
ENV MLCYCLE_CODE_VERSION=${CODE_VERSION}
USER 65532:65532
EXPOSE 8090
ENTRYPOINT ["python", "-m", "inference.drift_detector", "--host", "0.0.0.0"]

FROM base AS serving
COPY requirements/serving.lock /tmp/requirements.lock
RUN uv pip install --system --no-cache --compile-bytecode -r /tmp/requirements.lock
COPY --from=src /app /app
RUN uv pip install --system --no-cache --compile-bytecode --no-deps . && python -m compileall -q /app
ARG CODE_VERSION=unknown
ENV MLCYCLE_CODE_VERSION=${CODE_VERSION}
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "inference.predictor"]
