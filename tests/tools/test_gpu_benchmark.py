"""tools/analysis/gpu_benchmark.sh --device cpu --quick runs the whole GPU
benchmark on the tiny CLIP and writes the JSON and the markdown table (no
timing assertions: benchmarks are not unit tests)."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).parents[2]
SCRIPT = REPO / 'tools' / 'analysis' / 'gpu_benchmark.sh'


def _module():
    # the tool imports benchmark_utils from its own folder, as a script does
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location(
        'gpu_benchmark', REPO / 'tools' / 'analysis' / 'gpu_benchmark.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_step_flops_by_part():
    gb = _module()
    from benchmark_utils import transformer_flops
    flyp = gb.train_step_flops('ViT-B-16', 32, 10, None)
    drm = gb.train_step_flops('ViT-B-16', 32, 10, [20, 30])
    assert flyp['image'] == 3 * transformer_flops(32 * 197, 768, 12, 197)
    assert flyp['captions'] == 3 * transformer_flops(32 * 10, 512, 12, 10)
    assert flyp['prompts'] == 0
    assert drm['prompts'] == 3 * (transformer_flops(20, 512, 12, 20) +
                                  transformer_flops(30, 512, 12, 30))
    assert drm['total'] == flyp['total'] + drm['prompts']


def test_bad_batch_is_one_line_error():
    gb = _module()
    with pytest.raises(SystemExit):
        gb.parse_args(['--device', 'cpu', '--quick', '--batches', '1'])


def test_quick_cpu_run_writes_json_and_table(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', str(SCRIPT), '--device', 'cpu', '--quick', '--batches', '2',
         '4', '--peak-tflops', '1', '--out-dir', str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / 'gpu_benchmark.json').read_text())
    assert report['peak_tflops'] == 1.0
    [result] = report['results']
    assert result['arch'] == 'drm-tiny-vit' and result['classes'] == 8
    assert [row['batch'] for row in result['rows']] == [2, 4]
    for row in result['rows']:
        drm, flyp = row['DRM'], row['FLYP']
        assert row['drm_over_flyp'] == drm['step_s'] / flyp['step_s']
        assert drm['images_per_s'] == row['batch'] / drm['step_s']
        assert drm['mfu'] == drm['model_flops']['total'] / drm['step_s'] / 1e12
        assert drm['model_flops']['prompts'] > 0
        assert flyp['model_flops']['prompts'] == 0
        assert set(row['drm_peak_memory']) == {'no_ckpt', 'ckpt'}
        assert row['grad_checkpointing'] is False
    assert result['soft_label_pass']['images_per_s'] > 0
    table = (tmp_path / 'gpu_benchmark.md').read_text()
    assert table.count('| drm-tiny-vit |') == 2
    assert 'Soft-label pass, drm-tiny-vit' in table
