#!/usr/bin/env bash
# Print the path of actionlint (the GitHub Actions workflow linter), building a pinned release with Go when absent.
# Order: $ACTIONLINT_BIN, `actionlint` on PATH, the cache (~/.cache/mlcycle/bin), else `go install`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_go_binary actionlint ACTIONLINT_BIN "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION:-v1.7.12}" "about a minute"
