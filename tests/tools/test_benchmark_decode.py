"""tools/analysis/benchmark_decode.py runs end to end on tiny JPEGs."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

TOOL = pathlib.Path(__file__).parents[2] / 'tools' / 'analysis' / \
    'benchmark_decode.py'


def test_benchmark_reports_rates_and_speedups(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location('benchmark_decode', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / 'decode.json'
    monkeypatch.setattr(sys, 'argv', [
        str(TOOL), '--num-images', '3', '--size', '160', '120', '--crop',
        '32', '--min-size', '36', '--repeats', '1', '--out', str(out)])
    module.main()
    report = json.loads(out.read_text())
    assert len(report['images_per_s']) == 3
    assert all(rate > 0 for rate in report['images_per_s'].values())
    assert report['speedup_vs_mmcv'] > 0 and report['speedup_vs_pil_full'] > 0
