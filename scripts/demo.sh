#!/usr/bin/env bash
# The main job: set up .venv, segment the bundled sample image with the default student, then
# time it on every backend this machine has (quick mode) and write a table and a plot.
# Without --checkpoint the weights are RANDOM (the masks are meaningless, the timings are real).
# Arguments go to `python -m nanosam2.demo` (see --help); NANOSAM2_SKIP_BENCHMARK=1 skips the timing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup_env.sh
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
python -m nanosam2.demo "$@"
if [ "${NANOSAM2_SKIP_BENCHMARK:-0}" != "1" ]; then
  bash benchmarks/run_all.sh --quick --backbones resnet18
fi
