#!/usr/bin/env bash
# Runs the test suite on another Python and, optionally, other protobuf/grpcio versions, in
# ./.venv-pyXY (made with pyenv's interpreter of that version; reused on a second run).
#   scripts/test_pythons.sh 3.9                                  # newest protobuf and grpcio
#   scripts/test_pythons.sh 3.9 "protobuf==4.25.0" "grpcio==1.60.0" "grpcio-health-checking==1.60.0" -- tests/test_protos.py
# Arguments before "--" are extra pip requirements; after it, pytest's arguments (default: tests).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="${1:?usage: $0 PYTHON_VERSION [REQUIREMENT...] [-- PYTEST_ARGS...]}"
shift
PINS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do PINS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
PYTHON="$(pyenv root)/versions/$(pyenv versions --bare | grep -E "^${VERSION//./\\.}(\.|$)" | tail -1)/bin/python"
VENV="$ROOT/.venv-py${VERSION//./}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# without the protoc extra: grpcio-tools pins the newest protobuf (its freshness test then skips)
"$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[test]" "${PINS[@]}"
"$VENV/bin/pip" list --disable-pip-version-check 2>/dev/null | grep -iE "^(protobuf|grpcio) "
cd "$ROOT"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests}"
