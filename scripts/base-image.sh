#!/usr/bin/env bash
# Print the reference of a Python base image in the daemon at $DOCKER_HOST, making it from Debian packages when
# it is absent: the local equivalent of python:3.11-slim-bookworm (the Dockerfile's default, for users who can
# pull), for machines that reach Debian's archive but no container registry.
#
# debootstrap --variant=minbase bookworm with python3 (3.11, the same minor as python:3.11-slim-bookworm) and
# python3-venv; the Dockerfile installs into a venv on either base. The mirror is the one this machine's apt uses.
# The host's CA bundle is copied in at build time so pip/uv inside a build trust what the host trusts (a proxy's
# CA, for example); it is never committed, and images made FROM python:3.11-slim-bookworm do not get it.
# The tag carries a hash of this script, so editing it makes a new base.
set -euo pipefail

say() { echo "base-image [$(date +%H:%M:%S)]: $*" >&2; }
HERE="$(cd "$(dirname "$0")" && pwd)"
TAG="mlcycle-base:py3.11-bookworm-$(sha256sum "$HERE/base-image.sh" | cut -c1-10)"

if docker image inspect "$TAG" >/dev/null 2>&1; then echo "$TAG"; exit 0; fi

mirror() {
  local uri
  uri="$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)"
  # one-line format, with or without options in brackets: deb [arch=amd64 signed-by=...] URL suite ...
  [[ -n "$uri" ]] || uri="$(sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security | head -1 || true)"
  [[ -n "$uri" ]] || { say "no Debian mirror in this machine's apt sources; or pass PYTHON_IMAGE=upstream (needs a registry)"; exit 1; }
  echo "$uri"
}

if ! command -v debootstrap >/dev/null 2>&1; then
  [[ "$(id -u)" == 0 ]] || { say "debootstrap is missing (apt-get install debootstrap), or pass PYTHON_IMAGE"; exit 1; }
  say "installing debootstrap (first time only)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2; }
fi

MIRROR="$(mirror)"  # its own statement: a failure here stops the script (set -e)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mlcycle-base.XXXXXX")"
# --one-file-system: never descend into a mount debootstrap left behind (its /proc or /dev)
trap 'umount -R "$WORK/rootfs/proc" "$WORK/rootfs/sys" "$WORK/rootfs/dev" 2>/dev/null || true; rm -rf --one-file-system "$WORK"' EXIT
ROOTFS="$WORK/rootfs"
start=$SECONDS
say "debootstrap bookworm (python3, python3-venv) from $MIRROR — ~1 min, first time only"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" "$MIRROR" \
  >"$WORK/debootstrap.log" 2>&1 || { tail -30 "$WORK/debootstrap.log" >&2; say "debootstrap failed"; exit 1; }
# What a slim image leaves out: apt lists and caches, docs, man pages.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*
# The host's trust store (see above): the bundle, so uv/pip in the build reach the package index.
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
fi
# python3 -> python, as in the python:3.11 images
ln -sf python3 "$ROOTFS/usr/bin/python"
tar -C "$ROOTFS" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  -c 'CMD ["python3"]' - "$TAG" >/dev/null
say "made $TAG in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$TAG"
