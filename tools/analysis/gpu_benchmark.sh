#!/usr/bin/env bash
# The GPU figures of drm_mm in one command (< 8 min on one GPU): DRM / FLYP
# step ratio, bf16 images/s and model FLOPs utilisation at per-GPU batch 32
# and 128 for ViT-B/16 and ViT-L/14@336 (random weights), peak memory with
# and without gradient checkpointing, the soft-label pass in images/s.
# Writes work_dirs/gpu_benchmark/gpu_benchmark.{json,md}.
#   bash tools/analysis/gpu_benchmark.sh                       # GPU 0
#   CUDA_VISIBLE_DEVICES=3 bash tools/analysis/gpu_benchmark.sh
#   bash tools/analysis/gpu_benchmark.sh --device cpu --quick  # smoke run
# Other options: python tools/analysis/gpu_benchmark.py --help.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"
    else PYTHON=python; fi
fi
cd "$ROOT"
HF_HUB_OFFLINE=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
    exec "$PYTHON" tools/analysis/gpu_benchmark.py "$@"
