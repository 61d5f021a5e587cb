#!/usr/bin/env bash
# Build, or find cached, the binaries of mlcycle's local Kubernetes control plane, from pinned Go module
# versions: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (all the same
# Kubernetes release), KWOK, and KServe's controller manager; plus the KServe and Gateway API CRD sources.
# Prints the directory holding bin/ and src/ (cached outside the repo; a cold build takes ~20-30 minutes
# on 2 cores, progress on stderr). Nothing here is committed or downloaded as a prebuilt binary.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"          # k8s.io/* v0.34.x is what KServe v0.20.0 builds against
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.5.1}"
CACHE="${MLCYCLE_CACHE:-$HOME/.cache/mlcycle}/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-kserve-$KSERVE_VERSION-gwapi-$GATEWAY_API_VERSION"
BIN="$CACHE/bin"
SRC="$CACHE/src"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok manager)

have() { local b; for b in "$@"; do [[ -x "$BIN/$b" ]] || return 1; done; }
have_all() { have "${BINARIES[@]}" && [[ -d "$SRC/kserve" && -d "$SRC/gateway-api" && -d "$SRC/kwok" ]]; }
if have_all; then echo "$CACHE"; exit 0; fi

command -v go >/dev/null 2>&1 || { echo "ensure-control-plane: Go is needed to build the control plane (apt-get install golang or a Go toolchain)" >&2; exit 1; }
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local
mkdir -p "$BIN" "$SRC" "$CACHE/wrap"
say() { echo "ensure-control-plane [$(date +%H:%M:%S)]: $*" >&2; }
mod_dir() { go mod download -json "$1@$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }
GO_P="${GO_BUILD_PARALLEL:-2}"

# A wrapper module: modules with `replace` directives (Kubernetes, etcd, KServe) cannot be `go install`ed.
wrapper() { # name, require line, replace block, packages...
  local name=$1 require=$2 replaces=$3; shift 3
  local dir="$CACHE/wrap/$name"
  mkdir -p "$dir"
  { echo "module mlcycle.local/$name"; echo; echo "go 1.24"; echo; echo "require $require"; echo; echo "replace ("; echo "$replaces"; echo ")"; } > "$dir/go.mod"
  { echo "//go:build tools"; echo; echo "package tools"; echo; echo "import ("; for p in "$@"; do echo "	_ \"$p\""; done; echo ")"; } > "$dir/tools.go"
  (cd "$dir" && go mod tidy >&2)
}

if [[ ! -x "$BIN/etcd" ]]; then
  say "etcd $ETCD_VERSION (~2 min)"
  replaces=$(for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do echo "	go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"; done)
  wrapper etcd "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$replaces" go.etcd.io/etcd/server/v3
  (cd "$CACHE/wrap/etcd" && nice go build -p "$GO_P" -trimpath -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
fi

K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
if ! have "${K8S_BINS[@]}"; then
  say "Kubernetes $K8S_VERSION: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (~15 min cold)"
  kdir=$(mod_dir k8s.io/kubernetes "$K8S_VERSION")
  staging="v0.${K8S_VERSION#v1.}"
  replaces=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$kdir/go.mod")
  wrapper kubernetes "k8s.io/kubernetes $K8S_VERSION" "$replaces" "${K8S_BINS[@]/#/k8s.io/kubernetes/cmd/}"
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for b in "${K8S_BINS[@]}"; do
    [[ -x "$BIN/$b" ]] && continue
    say "  building $b"
    (cd "$CACHE/wrap/kubernetes" && nice go build -p "$GO_P" -trimpath -ldflags "$ldflags" -o "$BIN/$b" "k8s.io/kubernetes/cmd/$b")
  done
fi

if [[ ! -x "$BIN/kwok" || ! -d "$SRC/kwok" ]]; then
  say "KWOK $KWOK_VERSION (~2 min)"
  GOBIN="$BIN" nice go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
  rm -rf "$SRC/kwok" && cp -r "$(mod_dir sigs.k8s.io/kwok "$KWOK_VERSION")" "$SRC/kwok" && chmod -R u+w "$SRC/kwok"
fi

if [[ ! -x "$BIN/manager" || ! -d "$SRC/kserve" ]]; then
  say "KServe $KSERVE_VERSION controller manager (~8 min cold)"
  sdir=$(mod_dir github.com/kserve/kserve "$KSERVE_VERSION")
  # KServe's own replace block, minus local-path replaces.
  replaces=$(awk '/^replace \($/{r=1;next} r&&/^\)$/{r=0} r&&!/=> \.\.?\//{print} /^replace [^(]/&&!/=> \.\.?\//{sub(/^replace /,"\t");print}' "$sdir/go.mod")
  wrapper kserve "github.com/kserve/kserve $KSERVE_VERSION" "$replaces" github.com/kserve/kserve/cmd/manager
  (cd "$CACHE/wrap/kserve" && nice go build -p "$GO_P" -trimpath -o "$BIN/manager" github.com/kserve/kserve/cmd/manager)
  rm -rf "$SRC/kserve" && mkdir -p "$SRC/kserve" && cp -r "$sdir/config" "$SRC/kserve/config" && chmod -R u+w "$SRC/kserve"
fi

if [[ ! -d "$SRC/gateway-api" ]]; then
  say "Gateway API $GATEWAY_API_VERSION CRDs"
  gdir=$(mod_dir sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION")
  mkdir -p "$SRC/gateway-api" && cp -r "$gdir/config" "$SRC/gateway-api/config" && chmod -R u+w "$SRC/gateway-api"
fi

have_all || { echo "ensure-control-plane: build finished but binaries are missing under $BIN" >&2; exit 1; }
say "done: $("$BIN/kube-apiserver" --version) / $("$BIN/etcd" --version | head -1) / kwok $KWOK_VERSION / KServe $KSERVE_VERSION"
echo "$CACHE"
