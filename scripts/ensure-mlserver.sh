#!/usr/bin/env bash
# Print the path of an `mlserver` binary (MLServer 1.7.1 + mlserver-xgboost, the benchmark's peer) in its own venv:
# it does not co-install with kserve. Order: $MLSERVER_BIN, the cache venv (~/.cache/mlcycle/mlserver-venv),
# else create it.
set -euo pipefail
VENV="${MLCYCLE_CACHE:-$HOME/.cache/mlcycle}/mlserver-venv"
if [[ -n "${MLSERVER_BIN:-}" && -x "${MLSERVER_BIN}" ]]; then echo "$MLSERVER_BIN"; exit 0; fi
if [[ -x "$VENV/bin/mlserver" ]]; then echo "$VENV/bin/mlserver"; exit 0; fi
UV="${UV:-$(command -v uv || echo .venv/bin/uv)}"
echo "ensure-mlserver: creating $VENV with mlserver==1.7.1 mlserver-xgboost==1.7.1" >&2
"$UV" venv -q --python 3.11 "$VENV" >&2
"$UV" pip install -q --python "$VENV/bin/python" "mlserver==1.7.1" "mlserver-xgboost==1.7.1" >&2
echo "$VENV/bin/mlserver"
