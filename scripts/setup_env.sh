#!/usr/bin/env bash
# Create (or reuse) the virtual environment at .venv in the repository root and install
# everything nanosam2 needs for the demo, the exporters and the test suite.
#
# Sourced by scripts/demo.sh and scripts/test.sh. Re-installs only when setup.cfg,
# requirements/ or this script change (a stamp file records what was installed).
#
# Environment knobs:
#   PYTHON=python3.10            interpreter for a new venv (default: python3)
#   TORCH_SPEC="torch==X torchvision==Y"   torch wheels to install (default: the CPU/CUDA
#                                pair pinned below). For a CUDA desktop use the wheels of
#                                your CUDA version, e.g. with PIP_INDEX_URL set to PyTorch's
#                                cu12x index; on a Jetson, NVIDIA's JetPack torch wheels.
#   NANOSAM2_SYSTEM_TORCH=1      create the venv with --system-site-packages and keep the
#                                system's torch (JetPack images ship one); installs no torch.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment at $VENV"
  if [ "${NANOSAM2_SYSTEM_TORCH:-0}" = "1" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"

# pip, quietly: some machines' pip configuration names local package indexes whose per-package
# folders do not exist, and pip warns once per package ("Location ... is ignored"); drop only those.
pip_quiet() {
  "$PY" -m pip "$@" 2> >(sed -e "/WARNING: Location '.*' is ignored: it is neither a file nor a directory/d" >&2)
}

stamp_now="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT"/requirements/*.txt "$ROOT/scripts/setup_env.sh" \
  | { cat; echo "$TORCH_SPEC ${NANOSAM2_SYSTEM_TORCH:-0}"; } | sha256sum | cut -d' ' -f1)"
stamp_file="$VENV/.nanosam2-installed"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_now" ]; then
  echo "[setup] reusing $VENV (up to date)"
else
  start=$(date +%s)
  echo "[setup] installing into $VENV (first run: a few minutes; torch is large)"
  pip_quiet install -q --upgrade pip setuptools wheel
  if [ "${NANOSAM2_SYSTEM_TORCH:-0}" != "1" ]; then
    # shellcheck disable=SC2086
    pip_quiet install -q $TORCH_SPEC
  fi
  # sam2 1.1.0 is a source tarball whose build wants torch: build it against ours, by hash.
  SAM2_BUILD_CUDA=0 pip_quiet install -q --no-deps --no-build-isolation --require-hashes \
    -r "$ROOT/requirements/sam2.txt"
  # compat mode: a plain .pth to the checkout (the default finder prints a page of notes for a
  # flat layout with several top-level packages such as ours)
  pip_quiet install -q -e "$ROOT[dev]" --config-settings editable_mode=compat
  # tensorrt-stubs declares tensorrt as a dependency, which cannot be installed without
  # NVIDIA's index: take the stubs alone (mypy checks the TensorRT code against them).
  pip_quiet install -q --no-deps "tensorrt-stubs>=10.3"
  # PyTriton declares numpy<2: installed without its dependencies (the serve extra brings the others), and
  # Triton's Python-backend stub gets numpy 1 in an environment of its own (trt_runtime/serving/stub_env.py).
  pip_quiet install -q --no-deps --require-hashes -r "$ROOT/requirements/serve.txt"
  "$PY" -m trt_runtime.serving.stub_env
  echo "$stamp_now" > "$stamp_file"
  echo "[setup] installed in $(( $(date +%s) - start )) s; venv size $(du -sh "$VENV" | cut -f1)"
fi
export PATH="$VENV/bin:$PATH"
