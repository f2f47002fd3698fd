"""tools/train.py, tools/test.py and tools/dist_train.sh end to end on the
CPU smoke configs, plus their one-line errors for bad input."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LINEAR = 'configs/smoke/tiny_clip_linear_fake_iwildcam.py'
DRM = 'configs/smoke/drm_tiny_fake_iwildcam.py'


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1',
               PYTHON=sys.executable)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _data_opts(root):
    return ['--cfg-options'] + [
        f'{k}.dataset.data_root={root}'
        for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


def _run(args, check=True, timeout=600):
    out = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, (out.stdout[-2000:] + out.stderr[-4000:])
    return out


@pytest.mark.slow
def test_train_resume_test(tmp_path, fake_iwildcam_root):
    work = tmp_path / 'work'
    _run([sys.executable, 'tools/train.py', LINEAR, '--work-dir', str(work)]
         + _data_opts(fake_iwildcam_root))
    assert (work / 'epoch_2.pth').exists()
    scalars = list(work.glob('*/vis_data/scalars.json'))
    assert scalars and 'accuracy/top1' in scalars[0].read_text()

    # --resume auto continues after the last checkpoint
    out = _run([sys.executable, 'tools/train.py', LINEAR, '--work-dir',
                str(work), '--resume'] + _data_opts(fake_iwildcam_root) +
               ['train_cfg.max_epochs=3'])
    log = out.stdout + out.stderr
    assert 'Auto resume from' in log and 'epoch_2.pth' in log
    assert 'Epoch(train) [3]' in log and 'Epoch(train) [1]' not in log
    assert (work / 'epoch_3.pth').exists()

    metrics = tmp_path / 'metrics.json'
    _run([sys.executable, 'tools/test.py', LINEAR,
          str(work / 'epoch_3.pth'), '--work-dir', str(tmp_path / 'test'),
          '--out', str(metrics)] + _data_opts(fake_iwildcam_root))
    assert 'accuracy/top1' in json.loads(metrics.read_text())


@pytest.mark.slow
def test_dist_train_two_cpu_ranks(tmp_path, fake_iwildcam_root):
    work = tmp_path / 'dist'
    env_port = str(29500 + os.getpid() % 1000)
    out = subprocess.run(
        ['bash', 'tools/dist_train.sh', DRM, '2', '--work-dir', str(work)] +
        _data_opts(fake_iwildcam_root),
        cwd=ROOT, env=dict(_env(), PORT=env_port), capture_output=True,
        text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert (work / 'epoch_1.pth').exists()
    log = out.stdout + out.stderr
    assert 'world_size: 2' in log or 'Distributed launcher: pytorch' in log


def test_missing_config_is_one_line():
    out = _run([sys.executable, 'tools/train.py', 'configs/nope.py'],
               check=False)
    assert out.returncode != 0
    assert "config file 'configs/nope.py' does not exist" in out.stderr
    assert 'Traceback' not in out.stderr


def test_wrong_launcher_lists_choices():
    out = _run([sys.executable, 'tools/train.py', LINEAR, '--launcher',
                'torchrun'], check=False)
    assert out.returncode != 0
    assert "invalid choice: 'torchrun'" in out.stderr
    assert "'pytorch'" in out.stderr


def test_missing_resume_file(tmp_path):
    out = _run([sys.executable, 'tools/train.py', LINEAR, '--resume',
                str(tmp_path / 'gone.pth')], check=False)
    assert out.returncode != 0 and 'gone.pth' in out.stderr
    assert 'Traceback' not in out.stderr


def test_test_tool_missing_checkpoint(tmp_path):
    out = _run([sys.executable, 'tools/test.py', LINEAR,
                str(tmp_path / 'x.pth')], check=False)
    assert out.returncode != 0 and 'x.pth' in out.stderr
    assert '"none" for zero-shot' in out.stderr


def test_missing_data_root_names_path(tmp_path):
    missing = tmp_path / 'no_data_here'
    out = _run([sys.executable, 'tools/train.py', LINEAR, '--work-dir',
                str(tmp_path / 'w')] + _data_opts(missing), check=False)
    assert out.returncode != 0
    assert str(missing) in out.stderr and 'download' in out.stderr
    assert 'Traceback' not in out.stderr and 'DRM_MM_DEBUG' in out.stderr
    assert not list((tmp_path / 'w').glob('*.pth'))
