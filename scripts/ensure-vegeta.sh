#!/usr/bin/env bash
# Print the path of a vegeta binary (open-loop, constant-rate HTTP load generator), building a pinned
# release from the Go module proxy when none exists. Order: $VEGETA_BIN, `vegeta` on PATH, the cache, go install.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
VEGETA_VERSION="${VEGETA_VERSION:-v12.12.0}"
ensure_go_binary vegeta VEGETA_BIN "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
