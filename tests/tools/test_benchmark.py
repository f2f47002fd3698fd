"""tools/analysis/benchmark.py --quick runs on the tiny CLIP and reports
every figure (no timing assertions: benchmarks are not unit tests)."""
from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).parents[2]
TOOL = REPO / 'tools' / 'analysis' / 'benchmark.py'

FIGURES = [
    'train step DRM / FLYP (text tower trains)',
    'train step DRM / CE (text tower trains)',
    'train step DRM wrm_text_grad=False / FLYP (text tower trains)',
    'train step DRM wrm_text_grad=False wrm_text_refresh=10 / FLYP (text '
    'tower trains)',
    'train step DRM wrm_text_classes=16 wrm_text_refresh=10 / FLYP (text '
    'tower trains)',
    'train step DRM / FLYP (frozen text tower)',
    'MMEngine step / plain PyTorch loop (DRM)',
    'eval images/s: prototypes once / per batch',
    'cd text fwd+bwd: padded / trimmed',
    'pipeline images/s, 1 worker(s): reduced-scale / full decode (PIL)',
    'pipeline images/s, 1 worker(s): reduced-scale / mmcv LoadImageFromFile',
    'pipeline images/s, 2 worker(s): reduced-scale / full decode (PIL)',
    'pipeline images/s, 2 worker(s): reduced-scale / mmcv LoadImageFromFile',
    'soft-label pass: second run / first run time',
    'peak memory: grad checkpointing on / off',
    'peak memory: AMP bfloat16 / fp32',
]


def test_quick_benchmark_writes_every_figure(tmp_path):
    out = tmp_path / 'bench.json'
    # A subprocess: the memory section changes the allocator (mallopt).
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=f'{REPO}'
               f'{os.pathsep}{os.environ.get("PYTHONPATH", "")}')
    proc = subprocess.run(
        [sys.executable, str(TOOL), '--quick', '--repeats', '1', '--warmup',
         '0', '--batch-size', '4', '--classes', '4', '--eval-batch', '4',
         '--jpegs', '2', '--soft-label-images', '2', '--threads', '1',
         '--out', str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    names = [fig['name'] for fig in report['figures']]
    assert names == FIGURES
    for fig in report['figures']:
        if fig['ratio'] is not None:  # None: memory not measurable here
            assert math.isfinite(fig['ratio']) and fig['ratio'] > 0, fig
    assert report['details']['soft_labels']['cache_hit'] is True
    assert report['projection']['rows']
    imagenet = report['projection']['imagenet']  # 1000 classes, 1,019 cds
    assert imagenet['classes'] == 1000
    assert imagenet['tokens']['prompts'] == 1019
    [row] = imagenet['rows']  # --quick: the paper's 64 x 8 GPUs only
    assert (row['batch_per_gpu'], row['gpus'], row['global_batch']) == (
        64, 8, 512)
    flops = row['tflop_per_gpu_step']
    assert flops['drm'] == pytest.approx(flops['flyp'] + flops['cd_prompts'],
                                         rel=1e-12)
    assert 1 < row['drm_over_flyp'] < row['drm_over_flyp_unsharded']
    # the cheaper WRM paths: re-encoding every 10 steps (forward only), and
    # that plus forward+backward of 16 of the 1000 classes' prompts
    reencode = flops['cd_prompts'] * row['gpus'] / 3 / 10
    assert row['nograd_over_flyp'] == pytest.approx(
        1 + reencode / flops['flyp'], rel=1e-9)
    assert row['subset_over_flyp'] == pytest.approx(
        1 + (reencode + flops['cd_prompts'] * row['gpus'] * 16 / 1000)
        / flops['flyp'], rel=1e-9)
    assert 'memory' in report['details'] and report['machine']['torch']
    assert 'MMEngine step / plain PyTorch loop' in proc.stdout


def test_wrm_text_classes_flag_sets_the_subset_variant():
    import importlib.util
    spec = importlib.util.spec_from_file_location('benchmark_tool', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args(['--quick', '--wrm-text-classes', '8'])
    bench = tool.Bench(args)
    try:
        assert bench.method_options('DRM-subset-stale') == dict(
            wrm_text_classes=8, wrm_text_refresh=tool.NEVER)
        assert bench.method_options('DRM-nograd-stale') == dict(
            wrm_text_grad=False, wrm_text_refresh=tool.NEVER)
    finally:
        os.rmdir(bench.workdir)
    with pytest.raises(SystemExit):
        tool.parse_args(['--quick', '--wrm-text-classes', '1'])
    with pytest.raises(SystemExit):
        tool.parse_args(['--quick', '--wrm-text-refresh', '0'])
