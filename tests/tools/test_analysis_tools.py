"""tools/analysis/eval_metric.py and confusion_matrix.py on the
``{set: [predictions]}`` pickles of multi-set runs, and on a plain list the
same numbers as MMPretrain's analysis tools."""
import os
import os.path as osp
import subprocess
import sys

import mmengine
import mmpretrain
import pytest
import torch
from mmpretrain.structures import DataSample

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MM_TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
TOOLS = osp.join(ROOT, 'tools', 'analysis')


def _preds(pairs, num_classes=3):
    out = []
    for gt, pred in pairs:
        score = torch.full((num_classes, ), 0.1)
        score[pred] = 0.8
        out.append(DataSample().set_gt_label(gt).set_pred_label(pred)
                   .set_pred_score(score).to_dict())
    return out


ID = [(0, 0), (1, 1), (2, 1), (2, 2), (0, 0), (1, 0), (2, 2), (1, 1)]
OOD = [(0, 1), (1, 1), (2, 2), (0, 0)]


def _run(args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable] + args, env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture
def pickles(tmp_path):
    single, multi = tmp_path / 'single.pkl', tmp_path / 'multi.pkl'
    mmengine.dump(_preds(ID), str(single))
    mmengine.dump({'id_test': _preds(ID), 'test': _preds(OOD)}, str(multi))
    return str(single), str(multi)


def test_eval_metric_per_set_and_same_as_mmpretrain_on_one_set(
        pickles, tmp_path):
    single, multi = pickles
    ours = _run([osp.join(TOOLS, 'eval_metric.py'), multi, '--metric',
                 'type=Accuracy', 'topk=1', '--out',
                 str(tmp_path / 'm.json')])
    assert 'id_test/accuracy/top1: 75.0' in ours  # 6 of 8
    assert 'test/accuracy/top1: 75.0' in ours  # 3 of 4
    assert mmengine.load(str(tmp_path / 'm.json')) == {
        'id_test/accuracy/top1': 75.0, 'test/accuracy/top1': 75.0}
    ours = _run([osp.join(TOOLS, 'eval_metric.py'), single, '--metric',
                 'type=Accuracy', 'topk=1'])
    theirs = _run([osp.join(MM_TOOLS, 'analysis_tools', 'eval_metric.py'),
                   single, '--metric', 'type=Accuracy', 'topk=1'])
    assert ours.strip() == 'accuracy/top1: 75.0'
    assert "'accuracy/top1': 75.0" in theirs


def test_confusion_matrix_per_set_from_predictions(pickles, tmp_path):
    single, multi = pickles
    config = osp.join(ROOT, 'configs', 'smoke', 'drm_tiny_fake_iwildcam.py')
    out = str(tmp_path / 'cm.pkl')
    _run([osp.join(TOOLS, 'confusion_matrix.py'), config, multi, '--out',
          out])
    cms = mmengine.load(out)
    assert list(cms) == ['id_test', 'test']
    assert cms['id_test'].tolist() == [[2, 0, 0], [1, 2, 0], [0, 1, 2]]
    assert cms['test'].tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    # one set: MMPretrain's tool gives the same matrix
    _run([osp.join(TOOLS, 'confusion_matrix.py'), config, single, '--out',
          out])
    theirs = str(tmp_path / 'theirs.pkl')
    _run([osp.join(MM_TOOLS, 'analysis_tools', 'confusion_matrix.py'),
          config, single, '--out', theirs])
    assert mmengine.load(out)[''].tolist() == mmengine.load(theirs).tolist()


def test_unknown_set_is_one_line(pickles):
    _, multi = pickles
    proc = subprocess.run(
        [sys.executable, osp.join(TOOLS, 'eval_metric.py'), multi, '--set',
         'val', '--metric', 'type=Accuracy'], cwd=ROOT, capture_output=True,
        text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert proc.returncode != 0
    assert "no set 'val'; the file has ['id_test', 'test']" in proc.stderr
