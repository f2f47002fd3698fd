#!/usr/bin/env bash
# The README's main command: set up .venv (if needed) and run the toy-world
# study (projects/toy_world/tools/run_demo.py): generate the toy world,
# pretrain the tiny CLIP (cached), fine-tune FLYP / CE / DRM over 3 seeds, evaluate ID and
# OOD, WiSE-FT, print the table and write work_dirs/toy_demo/{results.md,
# results.json,id_vs_ood.png}. Extra arguments go to run_demo.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
export HF_HUB_OFFLINE=1
PY="$ROOT/.venv/bin/python"
start=$(date +%s)
"$PY" projects/toy_world/tools/run_demo.py "$@"
echo "[run_demo] wall time: $(( $(date +%s) - start )) s"
