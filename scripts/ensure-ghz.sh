#!/usr/bin/env bash
# Print the path of a ghz binary (gRPC load generator, Go), building a pinned release from the Go module proxy
# when none exists. Order: $GHZ_BIN, `ghz` on PATH, the cache (~/.cache/mlcycle/bin), go install.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
GHZ_VERSION="${GHZ_VERSION:-v0.120.0}"
ensure_go_binary ghz GHZ_BIN "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
