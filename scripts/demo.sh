#!/usr/bin/env bash
# The main job: set up .venv, then show what nanosam2 does on bundled inputs - a click and segment
# everything on the sample image, tracking through a short clip - with one timing table
# (python -m trt_runtime.demo; about 1.5 minutes on 2 CPU cores after the install).
# Without --checkpoint the weights are RANDOM (the masks are meaningless, the timings are real).
# Arguments go to `python -m trt_runtime.demo` (see --help). Every backend and precision compared:
# bash benchmarks/run_all.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup_env.sh
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
python -m trt_runtime.demo "$@"
