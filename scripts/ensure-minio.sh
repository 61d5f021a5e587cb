#!/usr/bin/env bash
# Print the path of a MinIO server binary, building a pinned release from source when none exists.
# Order: $MINIO_BIN, `minio` on PATH, the cache (~/.cache/mlcycle/bin), else `go install`.
set -euo pipefail
# The Go module proxy serves MinIO only as a pseudo-version (its RELEASE.* tags are not semver).
MINIO_MODULE_VERSION="${MINIO_MODULE_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
CACHE_BIN="${MLCYCLE_CACHE:-$HOME/.cache/mlcycle}/bin"

if [[ -n "${MINIO_BIN:-}" && -x "${MINIO_BIN}" ]]; then echo "$MINIO_BIN"; exit 0; fi
if command -v minio >/dev/null 2>&1; then command -v minio; exit 0; fi
if [[ -x "$CACHE_BIN/minio" ]]; then echo "$CACHE_BIN/minio"; exit 0; fi
command -v go >/dev/null 2>&1 || { echo "ensure-minio: no minio binary and no Go toolchain to build one; set MINIO_BIN" >&2; exit 1; }
mkdir -p "$CACHE_BIN"
echo "ensure-minio: building github.com/minio/minio@$MINIO_MODULE_VERSION (first time only, several minutes)" >&2
GOBIN="$CACHE_BIN" GOFLAGS="-buildvcs=false" go install "github.com/minio/minio@$MINIO_MODULE_VERSION" >&2
echo "$CACHE_BIN/minio"
