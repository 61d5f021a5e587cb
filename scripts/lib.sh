# Sourced by scripts/ensure-*.sh: find or build a Go tool binary and print its path.
# Order: $<BIN_VAR>, NAME on PATH, the cache ($MLCYCLE_CACHE or ~/.cache/mlcycle, under bin/), `go install`.
# ensure_go_binary NAME BIN_VAR MODULE@VERSION [NOTE]   (NOTE joins "first time only" in the build message)
CACHE_BIN="${MLCYCLE_CACHE:-$HOME/.cache/mlcycle}/bin"

ensure_go_binary() {
  local name="$1" var="$2" module="$3" note="${4:+, $4}"
  local given="${!var:-}"
  if [[ -n "$given" && -x "$given" ]]; then echo "$given"; return 0; fi
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  if [[ -x "$CACHE_BIN/$name" ]]; then echo "$CACHE_BIN/$name"; return 0; fi
  if ! command -v go >/dev/null 2>&1; then
    echo "ensure-$name: no $name binary and no Go toolchain to build one; set $var" >&2; return 1
  fi
  mkdir -p "$CACHE_BIN"
  echo "ensure-$name: building $module (first time only$note)" >&2
  GOBIN="$CACHE_BIN" GOFLAGS="-buildvcs=false" go install "$module" >&2
  echo "$CACHE_BIN/$name"
}
