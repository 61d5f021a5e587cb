#!/usr/bin/env bash
# Create a kind cluster with everything mlcycle needs, build and load its images, apply the kind overlay.
# Needs: docker, kind, kubectl, helm (none of them run on the CI machine, which has no Docker engine).
# Pinned versions:
CERT_MANAGER_VERSION=v1.16.2
KSERVE_VERSION=v0.20.0          # KServe Helm charts; Standard (raw) mode with spec.canary, no Knative
GATEWAY_API_VERSION=v1.2.1
KFP_VERSION=2.4.1               # Kubeflow Pipelines standalone (platform-agnostic manifests)
MLCYCLE_VERSION=0.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in docker kind kubectl helm; do command -v "$tool" >/dev/null || { echo "kind-up: '$tool' is required" >&2; exit 1; }; done

echo "== 1/7 cluster"
kind get clusters | grep -qx mlcycle || kind create cluster --config kind-config.yaml

echo "== 2/7 cert-manager ${CERT_MANAGER_VERSION}"
kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
kubectl -n cert-manager rollout status deploy/cert-manager-webhook --timeout=300s

echo "== 3/7 Gateway API ${GATEWAY_API_VERSION} + KServe ${KSERVE_VERSION} (Standard mode)"
kubectl apply -f "https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"
helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd --version "${KSERVE_VERSION}" -n kserve --create-namespace --wait
helm upgrade --install kserve oci://ghcr.io/kserve/charts/kserve --version "${KSERVE_VERSION}" -n kserve \
  --set kserve.controller.deploymentMode=Standard --wait

echo "== 4/7 Kubeflow Pipelines ${KFP_VERSION}"
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${KFP_VERSION}"
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=${KFP_VERSION}"
kubectl -n kubeflow patch svc ml-pipeline-ui --type merge -p '{"spec":{"type":"NodePort","ports":[{"port":80,"targetPort":3000,"nodePort":30888}]}}'

echo "== 5/7 images (mlcycle ${MLCYCLE_VERSION}) built and loaded into kind"
for target in pipeline drift serving; do
  docker build --target "$target" -t "ghcr.io/mlcycle/mlcycle-${target}:${MLCYCLE_VERSION}" --build-arg CODE_VERSION="$(git rev-parse HEAD)" .
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
set -a; source "$creds"; set +a
kubectl create namespace mlcycle --dry-run=client -o yaml | kubectl apply -f -
kubectl -n mlcycle create secret generic mlcycle-minio-admin --from-env-file="$creds" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n mlcycle create secret generic mlcycle-s3-serving \
  --from-literal=AWS_ACCESS_KEY_ID="$SERVING_ACCESS_KEY" --from-literal=AWS_SECRET_ACCESS_KEY="$SERVING_SECRET_KEY" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n mlcycle annotate --overwrite secret mlcycle-s3-serving \
  serving.kserve.io/s3-endpoint=minio.mlcycle.svc.cluster.local:9000 serving.kserve.io/s3-usehttps=0 \
  serving.kserve.io/s3-verifyssl=0 serving.kserve.io/s3-region=us-east-1
# the pipeline's write credentials, where KFP runs its steps
kubectl -n kubeflow create secret generic mlcycle-s3-pipeline \
  --from-literal=AWS_ENDPOINT_URL=http://minio.mlcycle.svc.cluster.local:9000 \
  --from-literal=AWS_ACCESS_KEY_ID="$PIPELINE_ACCESS_KEY" --from-literal=AWS_SECRET_ACCESS_KEY="$PIPELINE_SECRET_KEY" \
  --from-literal=AWS_DEFAULT_REGION=us-east-1 --from-literal=S3_VERIFY_SSL=0 --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -k manifests/overlays/kind

echo "== 7/7 waiting for readiness"
kubectl -n mlcycle rollout status deploy/minio --timeout=300s
kubectl -n mlcycle wait --for=condition=complete job/minio-bootstrap --timeout=300s
kubectl -n mlcycle rollout status deploy/prometheus --timeout=300s
kubectl -n kubeflow wait --for=condition=available deploy --all --timeout=900s
echo "ready: MinIO http://127.0.0.1:9000  Prometheus http://127.0.0.1:9090  KFP http://127.0.0.1:8888"
echo "next: make compile, upload build/pipelines/mlcycle-training.yaml in the KFP UI (registry_uri=s3://mlcycle-models)"
