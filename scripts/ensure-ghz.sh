#!/usr/bin/env bash
# Print the path of a ghz binary (gRPC load generator, Go), building a pinned release from the Go module proxy
# when none exists. Order: $GHZ_BIN, `ghz` on PATH, the cache (~/.cache/mlcycle/bin), go install.
set -euo pipefail
GHZ_VERSION="${GHZ_VERSION:-v0.120.0}"
CACHE_BIN="${MLCYCLE_CACHE:-$HOME/.cache/mlcycle}/bin"
if [[ -n "${GHZ_BIN:-}" && -x "${GHZ_BIN}" ]]; then echo "$GHZ_BIN"; exit 0; fi
if command -v ghz >/dev/null 2>&1; then command -v ghz; exit 0; fi
if [[ -x "$CACHE_BIN/ghz" ]]; then echo "$CACHE_BIN/ghz"; exit 0; fi
if ! command -v go >/dev/null 2>&1; then
  echo "ensure-ghz: no ghz binary and no Go toolchain to build one; set GHZ_BIN" >&2; exit 1
fi
mkdir -p "$CACHE_BIN"
echo "ensure-ghz: building github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION (first time only)" >&2
GOBIN="$CACHE_BIN" GOFLAGS="-buildvcs=false" go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" >&2
echo "$CACHE_BIN/ghz"
