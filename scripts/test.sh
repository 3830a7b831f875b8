#!/usr/bin/env bash
# Set up .venv, then run the test suite (GPU/TensorRT tests skip with the reason; tests marked
# slow, which have a fast counterpart in the default run, are left out: `-m slow` runs only them,
# `-m ""` everything). Extra arguments go to pytest, e.g. `scripts/test.sh -k export -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup_env.sh
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
echo "[lint] ruff check ."
ruff check .
exec python -m pytest -n 2 --dist loadgroup -m "not slow" "$@"
