#!/usr/bin/env bash
# Print the path of a vegeta binary (open-loop, constant-rate HTTP load generator), building a pinned
# release from the Go module proxy when none exists. Order: $VEGETA_BIN, `vegeta` on PATH, the cache, go install.
set -euo pipefail
VEGETA_VERSION="${VEGETA_VERSION:-v12.12.0}"
CACHE_BIN="${MLCYCLE_CACHE:-$HOME/.cache/mlcycle}/bin"
if [[ -n "${VEGETA_BIN:-}" && -x "${VEGETA_BIN}" ]]; then echo "$VEGETA_BIN"; exit 0; fi
if command -v vegeta >/dev/null 2>&1; then command -v vegeta; exit 0; fi
if [[ -x "$CACHE_BIN/vegeta" ]]; then echo "$CACHE_BIN/vegeta"; exit 0; fi
if ! command -v go >/dev/null 2>&1; then
  echo "ensure-vegeta: no vegeta binary and no Go toolchain to build one; set VEGETA_BIN" >&2; exit 1
fi
mkdir -p "$CACHE_BIN"
echo "ensure-vegeta: building github.com/tsenart/vegeta/v12@$VEGETA_VERSION (first time only)" >&2
GOBIN="$CACHE_BIN" GOFLAGS="-buildvcs=false" go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION" >&2
echo "$CACHE_BIN/vegeta"
