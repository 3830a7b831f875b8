#!/usr/bin/env bash
# Benchmark every backbone on every backend this machine has (see --help). Uses the repository's
# .venv when there is one (scripts/setup_env.sh makes it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="python3"
[ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"
cd "$ROOT"
exec "$PY" -m benchmarks.run_all "$@"
