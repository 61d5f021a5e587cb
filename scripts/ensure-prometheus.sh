#!/usr/bin/env bash
# Print the path of a Prometheus server binary; install Debian's package when none exists.
set -euo pipefail
if [[ -n "${PROMETHEUS_BIN:-}" && -x "${PROMETHEUS_BIN}" ]]; then echo "$PROMETHEUS_BIN"; exit 0; fi
if command -v prometheus >/dev/null 2>&1; then command -v prometheus; exit 0; fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-prometheus: no prometheus binary; install Debian's 'prometheus' package (or set PROMETHEUS_BIN)" >&2; exit 1
fi
echo "ensure-prometheus: installing Debian's prometheus package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends prometheus >&2 || { apt-get update >&2 && apt-get install -y --no-install-recommends prometheus >&2; }
command -v prometheus
