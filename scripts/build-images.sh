#!/usr/bin/env bash
# Build every mlcycle image for real, in the daemon at $DOCKER_HOST (scripts/docker-engine.sh finds or starts one):
#   make images [PYTHON_IMAGE=...] [IMAGE_REGISTRY=ghcr.io/mlcycle] [IMAGE_TAG=0.1.0]
# PYTHON_IMAGE empty: the local base from Debian packages (scripts/base-image.sh, no registry needed);
# PYTHON_IMAGE=upstream: the Dockerfile's default, python:3.11-slim-bookworm pinned by digest; anything else: that image.
# Each image is tagged with the reference the manifests and the compiled pipeline name (ghcr.io/mlcycle/mlcycle-<role>:
# <version>; the storage initializer as kserve/storage-initializer:v0.20.0, the name in KServe's inferenceservice-config),
# --network host: the private daemon has no bridge (docker-engine.sh); RUN steps reach the package index as the host does.
# so a cluster or the container tests find them without retagging. Each image's size is checked against its budget
# (README "Images"). Ends with one image reference per line, then the DOCKER_HOST= of the daemon that holds them.
set -euo pipefail
cd "$(dirname "$0")/.."
then=()
if [[ "${1:-}" == --then ]]; then shift; then=("$@"); exec 3>&1 1>&2; fi
say() { echo "images [$(date +%H:%M:%S)]: $*" >&2; }

REGISTRY="${IMAGE_REGISTRY:-ghcr.io/mlcycle}"
TAG="${IMAGE_TAG:-$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')}"
STORAGE_INITIALIZER="${STORAGE_INITIALIZER_IMAGE:-kserve/storage-initializer:v0.20.0}"
# role:budget in MB (uncompressed, as `docker image inspect` reports it); README "Images" says why each is what it is
BUDGETS=(pipeline:1250 drift:2000 serving:1250 capture:600 storage-initializer:400)
: "${DOCKER_HOST:?run through scripts/docker-engine.sh run, or set DOCKER_HOST}"

# A docker CLI that builds with BuildKit (the Dockerfile's cache mounts need it): buildx, else a CLI older than 23
# (Debian's docker.io) whose DOCKER_BUILDKIT=1 is built in.
pick_cli() {
  local c v
  for c in docker /usr/bin/docker; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" buildx version >/dev/null 2>&1; then echo "$c"; return 0; fi
    v="$("$c" version --format '{{.Client.Version}}' 2>/dev/null || true)"
    if [[ -n "$v" && "${v%%.*}" -lt 23 ]]; then echo "$c"; return 0; fi
  done
  say "no docker CLI that builds with BuildKit: install the buildx plugin (docker-buildx) or Debian's docker.io"
  return 1
}
CLI="$(pick_cli)"
export DOCKER_BUILDKIT=1

BUILD_ARGS=(--build-arg "CODE_VERSION=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  --build-arg "MLCYCLE_PIPELINE_IMAGE=$REGISTRY/mlcycle-pipeline:$TAG"
  --build-arg "MLCYCLE_DRIFT_IMAGE=$REGISTRY/mlcycle-drift:$TAG")
case "${PYTHON_IMAGE:-}" in
  "") BUILD_ARGS+=(--build-arg "PYTHON_IMAGE=$(scripts/base-image.sh)") ;;
  upstream) ;;
  *) BUILD_ARGS+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE") ;;
esac

ref_of() { if [[ "$1" == storage-initializer ]]; then echo "$STORAGE_INITIALIZER"; else echo "$REGISTRY/mlcycle-$1:$TAG"; fi; }

start=$SECONDS
refs=()
over=()
for entry in "${BUDGETS[@]}"; do
  role="${entry%%:*}" budget="${entry##*:}" ref="$(ref_of "${entry%%:*}")"
  if [[ -n "${IMAGE_ROLES:-}" && " $IMAGE_ROLES " != *" $role "* ]]; then continue; fi
  t=$SECONDS
  say "building $role -> $ref"
  if ! "$CLI" build --quiet --network host --target "$role" -t "$ref" "${BUILD_ARGS[@]}" . >/dev/null; then
    say "building $role failed (rerun: DOCKER_HOST=$DOCKER_HOST DOCKER_BUILDKIT=1 $CLI build --target $role .)"
    exit 1
  fi
  mb="$(docker image inspect -f '{{.Size}}' "$ref" | awk '{printf "%d", $1/1e6}')"
  say "  $role: ${mb} MB (budget ${budget} MB), $((SECONDS - t)) s"
  ((mb <= budget)) || over+=("$role ${mb} MB > ${budget} MB")
  refs+=("$ref")
done
say "all images in $((SECONDS - start)) s"
if ((${#over[@]})); then say "over budget: ${over[*]}"; exit 1; fi
printf '%s\n' "${refs[@]}"
echo "DOCKER_HOST=$DOCKER_HOST"
if ((${#then[@]})); then exec 1>&3 3>&-; exec "${then[@]}"; fi
