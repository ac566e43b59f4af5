#!/usr/bin/env bash
# Runs the tour on the embedded default store (./mlmd-data, or DATA_DIR): records two runs of
# an ML pipeline and prints the MLMD guide's questions with answers read back from the store.
# Installs the package alone (no test tools) the first time; later runs skip the install while
# the venv holds this checkout's mlmd-log at this version.
# Usage: demo.sh [DATA_DIR] [--json]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${MLMD_VENV:-$ROOT/.venv}"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml")"

installed() {  # (-I: the venv's own install, not this directory or PYTHONPATH)
  [ -x "$VENV/bin/mlmd-log" ] && "$VENV/bin/python" -I -c "
import importlib.metadata, sys, mlmd_log
sys.exit(importlib.metadata.version('mlmd-log') != sys.argv[1] or not mlmd_log.__file__.startswith(sys.argv[2]))
" "$VERSION" "$ROOT/mlmd_log/" 2>/dev/null
}

if ! installed; then
  echo "demo.sh: installing mlmd-log $VERSION into $VENV (first run only)" >&2
  "$ROOT/scripts/setup.sh" "" >/dev/null
fi
exec "$VENV/bin/mlmd-log" demo --data-dir "${1:-mlmd-data}" "${@:2}"
