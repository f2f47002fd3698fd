#!/usr/bin/env bash
# The README's main command: set up .venv (if needed) and run the embedded
# default job. Extra arguments go to tools/train.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
export HF_HUB_OFFLINE=1
PY="$ROOT/.venv/bin/python"
start=$(date +%s)
[ -d data/fake_wilds/iwildcam_v2.0 ] || \
    "$PY" tools/dataset_tools/make_fake_wilds.py data/fake_wilds --datasets iwildcam
"$PY" tools/train.py configs/smoke/tiny_clip_linear_fake_iwildcam.py "$@"
echo "[run_demo] wall time: $(( $(date +%s) - start )) s"
