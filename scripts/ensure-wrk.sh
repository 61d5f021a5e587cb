#!/usr/bin/env bash
# Print the path of a wrk binary (the C HTTP load generator). Order: $WRK_BIN, `wrk` on PATH, the cache
# (~/.cache/mlcycle/bin), else Debian's package unpacked into the cache (apt-get download + dpkg -x: no root needed).
set -euo pipefail
CACHE="${MLCYCLE_CACHE:-$HOME/.cache/mlcycle}"
if [[ -n "${WRK_BIN:-}" && -x "${WRK_BIN}" ]]; then echo "$WRK_BIN"; exit 0; fi
if command -v wrk >/dev/null 2>&1; then command -v wrk; exit 0; fi
if [[ -x "$CACHE/bin/wrk" ]]; then echo "$CACHE/bin/wrk"; exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "ensure-wrk: no wrk binary and no apt-get; set WRK_BIN" >&2; exit 1; }
echo "ensure-wrk: unpacking Debian's wrk package into $CACHE" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && { apt-get download wrk >&2 || { apt-get update >&2 && apt-get download wrk >&2; }; })
dpkg -x "$work"/wrk_*.deb "$work/root"
# Debian's wrk links the system's LuaJIT; unpack it next to wrk when it is not installed.
# (ldd's output is read whole: `ldd | grep -q` under pipefail fails when grep stops reading early)
missing=$(ldd "$work/root/usr/bin/wrk" | grep -c 'not found' || true)
if [[ "$missing" != 0 ]]; then
  (cd "$work" && apt-get download libluajit-5.1-2 >&2 && dpkg -x "$work"/libluajit-5.1-2_*.deb "$work/root")
fi
mkdir -p "$CACHE/bin" "$CACHE/lib"
cp -a "$work"/root/usr/lib/*/libluajit* "$CACHE/lib/" 2>/dev/null || true
if [[ "$missing" != 0 ]]; then
  launcher='#!/bin/sh\nLD_LIBRARY_PATH="%s/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s/bin/wrk.real" "$@"\n'
  # shellcheck disable=SC2059
  printf "$launcher" "$CACHE" "$CACHE" > "$CACHE/bin/wrk"
  cp "$work/root/usr/bin/wrk" "$CACHE/bin/wrk.real"
  chmod +x "$CACHE/bin/wrk"
else
  cp "$work/root/usr/bin/wrk" "$CACHE/bin/wrk"
fi
echo "$CACHE/bin/wrk"
