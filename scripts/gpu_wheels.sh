#!/usr/bin/env bash
# The wheels the GPU machine lacks (its image has Python 3.12, torch, onnx, onnxruntime, opencv, scipy,
# timm; no network), made here into .whl/ (ignored by git) for `carry: [".whl"]`; scripts/gpu_check.sh
# installs them into a temporary folder there. TensorRT-RTX's libs wheel (95 MB) is larger than one
# call carries (64 MiB), so it is left out: its tensorrt-rtx part then skips, saying so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
rm -rf .whl && mkdir -p .whl
# binary wheels for CPython 3.12 on x86-64 Linux
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "av>=12" "pycocotools>=2.0.8" "matplotlib>=3.7" kiwisolver contourpy fonttools
# pure-Python ones (some are published as source only): built into wheels here
"$PY" -m pip wheel -q --no-deps -w .whl "hydra-core>=1.3.2" "omegaconf>=2.3" "antlr4-python3-runtime==4.9.3" \
  "iopath>=0.1.10" "portalocker" "tqdm>=4.66" cycler pyparsing python-dateutil six
# Meta's sam2: the pinned source release, built without its CUDA extension (pure Python then)
SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation --require-hashes -r requirements/sam2.txt -w .whl
ls -la .whl
du -sh .whl
