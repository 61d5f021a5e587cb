#!/usr/bin/env bash
# Create a kind cluster with everything mlcycle needs, build and load its images, apply the kind overlay.
# Needs: docker, kind, kubectl, helm (none of them run on the CI machine, which has no Docker engine).
# Pinned versions:
# (KServe v0.20.0's own quick install pins cert-manager v1.17.0, Gateway API v1.5.1, Envoy Gateway v1.8.1.)
CERT_MANAGER_VERSION=v1.17.0
KSERVE_VERSION=v0.20.0          # charts kserve-crd + kserve-resources (the chart's name since v0.17); Standard mode
GATEWAY_API_VERSION=v1.5.1
ENVOY_GATEWAY_VERSION=v1.8.1    # the Gateway controller: without one, HTTPRoutes (KServe's and mlcycle's canary split) route nothing
KFP_VERSION=2.17.0              # Kubeflow Pipelines standalone; the SDK 2.17 line (2.4.1 leaves {{$.pipeline_job_uuid}} unresolved
                                # and ignores `optional` on Secrets)
MLCYCLE_VERSION=0.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in docker kind kubectl helm; do command -v "$tool" >/dev/null || { echo "kind-up: '$tool' is required" >&2; exit 1; }; done

echo "== 1/7 cluster"
kind get clusters | grep -qx mlcycle || kind create cluster --config kind-config.yaml

echo "== 2/7 cert-manager ${CERT_MANAGER_VERSION}"
kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
kubectl -n cert-manager rollout status deploy/cert-manager-webhook --timeout=300s

echo "== 3/7 Gateway API ${GATEWAY_API_VERSION}, Envoy Gateway ${ENVOY_GATEWAY_VERSION}, KServe ${KSERVE_VERSION} (Standard mode, Gateway API)"
kubectl apply --server-side -f "https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"
helm upgrade --install eg oci://docker.io/envoyproxy/gateway-helm --version "${ENVOY_GATEWAY_VERSION}" -n envoy-gateway-system --create-namespace --wait
kubectl create namespace kserve --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f manifests/cluster/gateway.yaml   # GatewayClass envoy + Gateway kserve/kserve-ingress-gateway
helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd --version "${KSERVE_VERSION}" -n kserve --wait
helm upgrade --install kserve-resources oci://ghcr.io/kserve/charts/kserve-resources --version "${KSERVE_VERSION}" -n kserve \
  --set kserve.controller.deploymentMode=Standard \
  --set kserve.controller.gateway.ingressGateway.enableGatewayApi=true \
  --set kserve.controller.gateway.ingressGateway.kserveGateway=kserve/kserve-ingress-gateway \
  --set kserve.controller.gateway.ingressGateway.className=envoy --wait

echo "== 4/7 Kubeflow Pipelines ${KFP_VERSION}"
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${KFP_VERSION}"
for _ in $(seq 60); do kubectl get crd applications.app.k8s.io >/dev/null 2>&1 && break; sleep 2; done  # wait on a nil status fails
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=${KFP_VERSION}"
kubectl -n kubeflow patch svc ml-pipeline-ui --type merge -p '{"spec":{"type":"NodePort","ports":[{"port":80,"targetPort":3000,"nodePort":30888}]}}'

echo "== 5/7 images (mlcycle ${MLCYCLE_VERSION}) built and loaded into kind"
# the same build as `make images` (FROM the Dockerfile's pinned python:3.11-slim-bookworm: kind users can pull)
# (KServe pulls its own storage initializer there: not built). Your daemon, as kind uses it (DOCKER_HOST or the socket).
line="$(scripts/docker-engine.sh up)" && export "$line"
IMAGE_TAG="$MLCYCLE_VERSION" PYTHON_IMAGE=upstream IMAGE_ROLES="pipeline drift serving capture" scripts/build-images.sh
for target in pipeline drift serving capture; do
  kind load docker-image --name mlcycle "ghcr.io/mlcycle/mlcycle-${target}:${MLCYCLE_VERSION}"
done

echo "== 6/7 namespace, secrets (random credentials, kept in .mlcycle/kind/), kind overlay"
mkdir -p .mlcycle/kind && chmod 700 .mlcycle/kind
creds=.mlcycle/kind/credentials.env
if [[ ! -f $creds ]]; then
  rnd() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
  umask 077
  cat > "$creds" <<EOT
MINIO_ROOT_USER=admin-$(python3 -c 'import secrets; print(secrets.token_hex(4))')
MINIO_ROOT_PASSWORD=$(rnd)
PIPELINE_ACCESS_KEY=pipeline-$(python3 -c 'import secrets; print(secrets.token_hex(4))')
PIPELINE_SECRET_KEY=$(rnd)
SERVING_ACCESS_KEY=serving-$(python3 -c 'import secrets; print(secrets.token_hex(4))')
SERVING_SECRET_KEY=$(rnd)
EOT
fi
if ! grep -q '^CAPTURE_ACCESS_KEY=' "$creds"; then  # credentials files from before the capture user
  umask 077
  printf 'CAPTURE_ACCESS_KEY=capture-%s\nCAPTURE_SECRET_KEY=%s\n' \
    "$(python3 -c 'import secrets; print(secrets.token_hex(4))')" \
    "$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')" >> "$creds"
fi
set -a; source "$creds"; set +a
kubectl create namespace mlcycle --dry-run=client -o yaml | kubectl apply -f -
kubectl -n mlcycle create secret generic mlcycle-minio-admin --from-env-file="$creds" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n mlcycle create secret generic mlcycle-s3-serving \
  --from-literal=AWS_ACCESS_KEY_ID="$SERVING_ACCESS_KEY" --from-literal=AWS_SECRET_ACCESS_KEY="$SERVING_SECRET_KEY" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n mlcycle annotate --overwrite secret mlcycle-s3-serving \
  serving.kserve.io/s3-endpoint=minio.mlcycle.svc.cluster.local:9000 serving.kserve.io/s3-usehttps=0 \
  serving.kserve.io/s3-verifyssl=0 serving.kserve.io/s3-region=us-east-1
# the capture service's keys (MinIO policy capture-writer: <model>/traffic/ and <model>/labels/ only)
kubectl -n mlcycle create secret generic mlcycle-s3-capture \
  --from-literal=AWS_ACCESS_KEY_ID="$CAPTURE_ACCESS_KEY" --from-literal=AWS_SECRET_ACCESS_KEY="$CAPTURE_SECRET_KEY" \
  --dry-run=client -o yaml | kubectl apply -f -
# the pipeline's write credentials, where KFP runs its steps
kubectl -n kubeflow create secret generic mlcycle-s3-pipeline \
  --from-literal=AWS_ENDPOINT_URL=http://minio.mlcycle.svc.cluster.local:9000 \
  --from-literal=AWS_ACCESS_KEY_ID="$PIPELINE_ACCESS_KEY" --from-literal=AWS_SECRET_ACCESS_KEY="$PIPELINE_SECRET_KEY" \
  --from-literal=AWS_DEFAULT_REGION=us-east-1 --from-literal=S3_VERIFY_SSL=0 --dry-run=client -o yaml | kubectl apply -f -
# the bootstrap Job is idempotent: run it again so users added since the last kind-up (e.g. capture) exist
kubectl -n mlcycle delete job minio-bootstrap --ignore-not-found
kubectl apply -k manifests/overlays/kind

echo "== 7/7 a first model version, then readiness"
kubectl -n mlcycle rollout status deploy/minio --timeout=300s
kubectl -n mlcycle wait --for=condition=complete job/minio-bootstrap --timeout=300s
# The manifests name no version (s3://…/VERSION/): train the demo model into the cluster's MinIO (NodePort 9000)
# and point the predictor and the drift detector at it, so no init container fails on a placeholder.
make setup >/dev/null
AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID="$PIPELINE_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$PIPELINE_SECRET_KEY" \
  AWS_DEFAULT_REGION=us-east-1 .venv/bin/mlcycle demo --registry s3://mlcycle-models --rows 20000 --strict
version=$(AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID="$PIPELINE_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$PIPELINE_SECRET_KEY" \
  .venv/bin/mlcycle models show fraud-detector production --registry s3://mlcycle-models | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
uri="s3://mlcycle-models/fraud-detector/${version}/"
kubectl -n mlcycle patch inferenceservice fraud-detector --type json \
  -p "[{\"op\":\"replace\",\"path\":\"/spec/predictor/containers/0/env/0\",\"value\":{\"name\":\"STORAGE_URI\",\"value\":\"${uri}\"}}]"
kubectl -n mlcycle patch deployment fraud-detector-drift --type json \
  -p "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/initContainers/0/args/0\",\"value\":\"${uri}\"}]"
kubectl -n mlcycle wait --for=condition=Ready inferenceservice/fraud-detector --timeout=600s
kubectl -n mlcycle rollout status deploy/fraud-detector-drift --timeout=300s
kubectl -n mlcycle rollout status deploy/prometheus --timeout=300s
kubectl -n kubeflow wait --for=condition=available deploy --all --timeout=900s
echo "ready: MinIO http://127.0.0.1:9000  Prometheus http://127.0.0.1:9090  KFP http://127.0.0.1:8888"
echo "next: make compile, upload build/pipelines/mlcycle-training.yaml in the KFP UI (registry_uri=s3://mlcycle-models)"
