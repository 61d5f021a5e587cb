#!/usr/bin/env bash
# Print the path of a MinIO server binary, building a pinned release from source when none exists.
# Order: $MINIO_BIN, `minio` on PATH, the cache (~/.cache/mlcycle/bin), else `go install`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# The Go module proxy serves MinIO only as a pseudo-version (its RELEASE.* tags are not semver).
MINIO_MODULE_VERSION="${MINIO_MODULE_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
ensure_go_binary minio MINIO_BIN "github.com/minio/minio@$MINIO_MODULE_VERSION" "several minutes"
