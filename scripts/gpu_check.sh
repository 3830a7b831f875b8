#!/usr/bin/env bash
# The GPU proof in one call (benchmarks/gpu_check.py): carried wheels from .whl/ installed into a
# temporary folder, then every GPU check and timing, each part in its own time box, about six minutes.
# On the device machine (no network, Python 3.12 with torch): bash scripts/gpu_check.sh
# Here, the plumbing on the CPU:                               bash scripts/gpu_check.sh --cpu-dry-run
# The wheels to carry: bash scripts/gpu_wheels.sh (writes .whl/, which git ignores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
if [ -x .venv/bin/python ] && [ "${NANOSAM2_SYSTEM_PYTHON:-0}" != "1" ]; then PY=.venv/bin/python; fi
export PYTHONUNBUFFERED=1
exec "$PY" -m benchmarks.gpu_check "$@"
