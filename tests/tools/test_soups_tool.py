"""tools/soups.py on bad input: one error line naming the file, no
traceback."""
import os
import pathlib
import subprocess
import sys

import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'smoke' / 'tiny_clip_linear_fake_iwildcam.py'


def run_soups(args, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1',
               PYTHONUNBUFFERED='1')
    env.pop('DRM_MM_DEBUG', None)
    return subprocess.run(
        [sys.executable, 'tools/soups.py', str(CONFIG), *args, '--mode',
         'uniform', '--work-dir', str(tmp_path / 'w')], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=180)


def test_corrupt_ingredient_is_one_line(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}}, good)
    bad = tmp_path / 'bitrot.pth'
    bad.write_bytes(good.read_bytes()[:150])  # truncated
    result = run_soups([str(good), str(bad)], tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1, result.stderr[-2000:]
    assert 'bitrot.pth' in errors[0] and 'cannot be read' in errors[0]
    assert result.stderr.rstrip().endswith(
        '(set DRM_MM_DEBUG=1 for the full traceback)')


def test_missing_ingredient_is_named(tmp_path):
    result = run_soups([str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth')],
                       tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"soups.py: checkpoint(s) ['{tmp_path / 'a.pth'}', "
        f"'{tmp_path / 'b.pth'}'] do not exist.")
