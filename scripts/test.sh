#!/usr/bin/env bash
# Sets up everything the tests need (our venv, the reference ml-metadata venv) and runs them.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$("$ROOT/scripts/setup.sh")"
"$ROOT/scripts/ref_venv.sh" >/dev/null
cd "$ROOT"
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
