"""tools/analysis/benchmark_soft_label_storage.py runs at a small size,
reports both variants and leaves no table file behind (no memory
assertions: benchmarks are not unit tests)."""
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).parents[2]
TOOL = REPO / 'tools' / 'analysis' / 'benchmark_soft_label_storage.py'


def test_small_run_reports_both_variants_and_cleans_up(tmp_path):
    out, scratch = tmp_path / 'storage.json', tmp_path / 'scratch'
    scratch.mkdir()
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=f'{REPO}'
               f'{os.pathsep}{os.environ.get("PYTHONPATH", "")}')
    proc = subprocess.run(
        [sys.executable, str(TOOL), '--rows', '3000', '--classes', '10',
         '--batch', '8', '--lookups', '5', '--tmp-dir', str(scratch),
         '--out', str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report['file_bytes'] == 3000 * 10 * 2 + 128  # .npy header 128
    assert sorted(report['variants']) == ['dense', 'memmap']
    assert os.listdir(scratch) == []
