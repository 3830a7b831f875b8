#!/usr/bin/env bash
# The main job: set up .venv, then segment the bundled sample image with the default student.
# Without --checkpoint the weights are RANDOM (the masks are meaningless, timings are real).
# Every argument is passed on to `python -m nanosam2.demo` (see --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup_env.sh
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec python -m nanosam2.demo "$@"
