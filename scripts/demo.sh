#!/usr/bin/env bash
# Sets up mlmd-log and runs the main job on the embedded default store (./mlmd-data):
# records the MLMD guide's example workflow and prints the model's lineage.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$("$ROOT/scripts/setup.sh")"
exec "$(dirname "$PY")/mlmd-log" demo --data-dir "${1:-mlmd-data}"
