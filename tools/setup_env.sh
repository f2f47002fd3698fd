#!/usr/bin/env bash
# Create (or reuse) the project-local virtual environment .venv and install
# the pinned, known-good versions plus drm_mm itself in editable mode.
# Idempotent: a stamp of the requirement files skips work on a rerun.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VENV="${DRM_MM_VENV:-$ROOT/.venv}"
PY="${PYTHON_FOR_VENV:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup_env] creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.drm_mm_stamp"
WANT="$(cat requirements/pinned.txt requirements/tests.txt setup.py | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
        && "$VENV/bin/python" -c "import drm_mm" 2>/dev/null; then
    echo "[setup_env] $VENV is up to date"
    exit 0
fi
start=$(date +%s)
echo "[setup_env] installing pinned requirements (a few minutes on first run)"
# pip's local-index warnings are noise on these machines.
"$VENV/bin/pip" install -q -r requirements/pinned.txt -r requirements/tests.txt \
    2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import torch, torchvision, mmpretrain, open_clip, wilds" \
    || { echo "[setup_env] install failed: see pip output above" >&2; exit 1; }
"$VENV/bin/pip" install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import drm_mm" \
    || { echo "[setup_env] drm_mm failed to import" >&2; exit 1; }
echo "$WANT" > "$STAMP"
echo "[setup_env] done in $(( $(date +%s) - start )) s"
