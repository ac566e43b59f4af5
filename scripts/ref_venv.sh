#!/usr/bin/env bash
# Creates (once) the virtualenv holding the official ml-metadata 1.17.1, our oracle.
# It lives apart from ours: it pins an old protobuf and defines the same proto symbols.
# Prints the venv's python path on stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${MLMD_REF_VENV:-$ROOT/.venv-ref}"
# pytest too: the official test suite runs under this interpreter against our gRPC server.
if ! "$VENV/bin/python" -c "import ml_metadata, pytest" >/dev/null 2>&1; then
  [ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "ml-metadata==1.17.1" "pytest>=8" >&2
fi
echo "$VENV/bin/python"
