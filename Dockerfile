# mlcycle images, one target per role so each carries only what it needs (`make images` builds them all):
#   pipeline             every training step (kfp, scikit-learn, xgboost-cpu, skops, onnx); no alibi-detect
#   drift                the build_detector step and the drift detector service (adds alibi-detect, ~1 GB)
#   serving              the KServe predictor runtime (kserve, xgboost-cpu, scikit-learn, onnxruntime, kserve-storage)
#   capture              the traffic capture service (FastAPI, pandas/pyarrow, minio); no model libraries
#   storage-initializer  KServe's init container: the kserve-storage package and an entrypoint that takes
#                        `SRC DEST` pairs, under the name KServe's inferenceservice-config gives it
# Base: python:3.11-slim-bookworm pinned by digest (users with a registry). Without one, `make base-image` makes an
# equivalent from Debian packages (same Python minor) and `make images` passes it as PYTHON_IMAGE. Either way the
# interpreter is the base's python3 and every package goes into the venv /opt/venv.
# Needs BuildKit (cache mounts): Docker >= 23 builds with it by default; 20.10 with DOCKER_BUILDKIT=1.
# Dependencies come from the lock files (requirements/*.lock); nothing is pip-installed at run time. One uv cache
# (a BuildKit cache mount) serves every role, so a package shared by two roles downloads once; the project's code is
# the last layer of each role, so a warm rebuild after a code change re-runs only that layer (seconds).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${PYTHON_IMAGE} AS base
# PYTHONDONTWRITEBYTECODE: a read-only root cannot take .pyc files anyway; the venv is compiled at install time
# (UV_COMPILE_BYTECODE), since every pipeline step is a fresh interpreter that would otherwise compile its libraries.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    MPLCONFIGDIR=/tmp/matplotlib
RUN python3 -m venv /opt/venv \
    && (getent group 65532 || groupadd --gid 65532 mlcycle) \
    && (getent passwd 65532 || useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mlcycle)
WORKDIR /app

# uv, used at build time only (mounted into the install steps, never in a final image).
FROM base AS uv
RUN python3 -m venv /uv && /uv/bin/pip install --no-cache-dir --disable-pip-version-check -q uv==0.13.9

# The project as a wheel, built once for every role. Changes to the code invalidate only this stage and the last
# layer of each role.
FROM base AS wheel
COPY pyproject.toml README.md /src/
COPY mlcycle /src/mlcycle
COPY components /src/components
COPY pipelines /src/pipelines
COPY inference /src/inference
COPY cli /src/cli
RUN --mount=from=uv,source=/uv,target=/uv --mount=type=cache,id=mlcycle-uv,target=/cache/uv,sharing=locked \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1 UV_CACHE_DIR=/cache/uv \
    /uv/bin/uv build --quiet --wheel --out-dir /dist /src

# Install one lock into /opt/venv. SSL_CERT_FILE + UV_NATIVE_TLS: uv trusts the base's CA bundle (on the local base,
# the build machine's; see scripts/base-image.sh). The shared cache is copied from, not linked, so the image owns its files.
FROM base AS pipeline-deps
RUN --mount=from=uv,source=/uv,target=/uv --mount=type=cache,id=mlcycle-uv,target=/cache/uv,sharing=locked \
    --mount=type=bind,source=requirements/pipeline.lock,target=/tmp/requirements.lock \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1 UV_CACHE_DIR=/cache/uv UV_LINK_MODE=copy \
    /uv/bin/uv pip install --quiet --python /opt/venv/bin/python --compile-bytecode -r /tmp/requirements.lock

FROM base AS drift-deps
RUN --mount=from=uv,source=/uv,target=/uv --mount=type=cache,id=mlcycle-uv,target=/cache/uv,sharing=locked \
    --mount=type=bind,source=requirements/drift.lock,target=/tmp/requirements.lock \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1 UV_CACHE_DIR=/cache/uv UV_LINK_MODE=copy \
    /uv/bin/uv pip install --quiet --python /opt/venv/bin/python --compile-bytecode -r /tmp/requirements.lock

FROM base AS serving-deps
RUN --mount=from=uv,source=/uv,target=/uv --mount=type=cache,id=mlcycle-uv,target=/cache/uv,sharing=locked \
    --mount=type=bind,source=requirements/serving.lock,target=/tmp/requirements.lock \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1 UV_CACHE_DIR=/cache/uv UV_LINK_MODE=copy \
    /uv/bin/uv pip install --quiet --python /opt/venv/bin/python --compile-bytecode -r /tmp/requirements.lock

FROM base AS capture-deps
RUN --mount=from=uv,source=/uv,target=/uv --mount=type=cache,id=mlcycle-uv,target=/cache/uv,sharing=locked \
    --mount=type=bind,source=requirements/capture.lock,target=/tmp/requirements.lock \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1 UV_CACHE_DIR=/cache/uv UV_LINK_MODE=copy \
    /uv/bin/uv pip install --quiet --python /opt/venv/bin/python --compile-bytecode -r /tmp/requirements.lock

# The project itself, without dependencies (the lock put them there): the same wheel in every role.
FROM pipeline-deps AS pipeline
RUN --mount=from=uv,source=/uv,target=/uv --mount=from=wheel,source=/dist,target=/dist \
    /uv/bin/uv pip install --quiet --python /opt/venv/bin/python --no-deps --compile-bytecode /dist/*.whl
COPY manifests/base/minio/policies /app/manifests/base/minio/policies
ARG CODE_VERSION=unknown
ENV MLCYCLE_CODE_VERSION=${CODE_VERSION} MLCYCLE_POLICY_DIR=/app/manifests/base/minio/policies
USER 65532:65532

FROM drift-deps AS drift
RUN --mount=from=uv,source=/uv,target=/uv --mount=from=wheel,source=/dist,target=/dist \
    /uv/bin/uv pip install --quiet --python /opt/venv/bin/python --no-deps --compile-bytecode /dist/*.whl
COPY manifests/base/minio/policies /app/manifests/base/minio/policies
# The compiled training pipeline the KFP retrain hook submits (--kfp_package); image references are pinned at
# build time the same way as for `make compile` (MLCYCLE_PIPELINE_IMAGE / MLCYCLE_DRIFT_IMAGE build args).
ARG MLCYCLE_PIPELINE_IMAGE
ARG MLCYCLE_DRIFT_IMAGE
RUN env ${MLCYCLE_PIPELINE_IMAGE:+MLCYCLE_PIPELINE_IMAGE=$MLCYCLE_PIPELINE_IMAGE} \
       ${MLCYCLE_DRIFT_IMAGE:+MLCYCLE_DRIFT_IMAGE=$MLCYCLE_DRIFT_IMAGE} python -m pipelines.compile --out /app/pipelines \
    && test -s /app/pipelines/mlcycle-training.yaml
ARG CODE_VERSION=unknown
# alibi-detect's numba functions cache their compiled code at import; site-packages is not the user's to write, so
# the cache goes to /tmp (an emptyDir in the manifests, whose root filesystem is read-only)
ENV MLCYCLE_CODE_VERSION=${CODE_VERSION} MLCYCLE_POLICY_DIR=/app/manifests/base/minio/policies \
    NUMBA_CACHE_DIR=/tmp/numba-cache
USER 65532:65532
EXPOSE 8090
ENTRYPOINT ["python", "-m", "inference.drift_detector", "--host", "0.0.0.0"]

FROM serving-deps AS serving
RUN --mount=from=uv,source=/uv,target=/uv --mount=from=wheel,source=/dist,target=/dist \
    /uv/bin/uv pip install --quiet --python /opt/venv/bin/python --no-deps --compile-bytecode /dist/*.whl
ARG CODE_VERSION=unknown
ENV MLCYCLE_CODE_VERSION=${CODE_VERSION}
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "inference.predictor"]

FROM capture-deps AS capture
RUN --mount=from=uv,source=/uv,target=/uv --mount=from=wheel,source=/dist,target=/dist \
    /uv/bin/uv pip install --quiet --python /opt/venv/bin/python --no-deps --compile-bytecode /dist/*.whl
ARG CODE_VERSION=unknown
ENV MLCYCLE_CODE_VERSION=${CODE_VERSION}
USER 65532:65532
EXPOSE 8091
ENTRYPOINT ["python", "-m", "inference.capture"]

# KServe's storage initializer, made here: the kserve-storage package (the same version as the controller) in a
# venv, an entrypoint at the path KServe's image uses that downloads each `SRC DEST` pair, uid 1000 as upstream.
FROM base AS storage-initializer
RUN --mount=from=uv,source=/uv,target=/uv --mount=type=cache,id=mlcycle-uv,target=/cache/uv,sharing=locked \
    --mount=type=bind,source=requirements/storage-initializer.lock,target=/tmp/requirements.lock \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1 UV_CACHE_DIR=/cache/uv UV_LINK_MODE=copy \
    /uv/bin/uv pip install --quiet --python /opt/venv/bin/python --compile-bytecode -r /tmp/requirements.lock \
    && (getent passwd 1000 || useradd --uid 1000 --gid 0 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin kserve)
COPY images/storage-initializer/initializer-entrypoint /storage-initializer/scripts/initializer-entrypoint
USER 1000
ENTRYPOINT ["/storage-initializer/scripts/initializer-entrypoint"]
