#!/usr/bin/env bash
# Creates ./.venv with mlmd-log installed (editable) plus its test tools. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${MLMD_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[test,protoc]"
echo "$VENV/bin/python"
