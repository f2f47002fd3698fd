#!/usr/bin/env bash
# The README's test command: set up .venv (if needed) and run the whole
# test suite, printing its wall time. Extra arguments go to pytest,
# e.g. `bash tools/run_tests.sh -m "not slow"`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
export HF_HUB_OFFLINE=1
# glibc's per-thread malloc arenas fragment when many CLIP models are built
# in one process (the config tests); two arenas keep the RSS flat.
export MALLOC_ARENA_MAX=2
# Float results differ in the last bits between CPU kinds (AVX-512 or not):
# say which one ran the suite.
echo "[run_tests] CPU: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores)"
start=$(date +%s)
set +e
"$ROOT/.venv/bin/python" -m pytest tests projects -p no:cacheprovider "$@"
rc=$?
set -e
echo "[run_tests] test suite wall time: $(( $(date +%s) - start )) s (exit $rc)"
exit $rc
