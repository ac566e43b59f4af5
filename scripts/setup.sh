#!/usr/bin/env bash
# Creates ./.venv (or $MLMD_VENV) with mlmd-log installed (editable) plus EXTRAS, by default its
# test tools; prints the venv's python. Idempotent.
# Usage: setup.sh [EXTRAS]    setup.sh "" installs the package alone, showing pip's progress.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${MLMD_VENV:-$ROOT/.venv}"
EXTRAS="${1-test,protoc}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ -n "$EXTRAS" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[$EXTRAS]"
else  # (stdout carries the python's path alone: pip reports on stderr)
  "$VENV/bin/pip" install --disable-pip-version-check -e "$ROOT" >&2
fi
echo "$VENV/bin/python"
