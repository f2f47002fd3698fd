"""tools/analysis/eval_metric.py, confusion_matrix.py and
analyze_results.py on the ``{set: [predictions]}`` pickles of multi-set
runs, and on a plain list the same numbers (and selection) as MMPretrain's
analysis tools."""
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


def _analyze_results():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'drm_analyze_results', osp.join(TOOLS, 'analyze_results.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scored(num=6):
    """Predictions on a fake iWildCam split (sample i has true label i):
    wrong for i = 0 and 3, top score 0.3 + 0.1 i, written in a shuffled
    order so that the file's order is not the score's."""
    out = []
    for i in (5, 3, 1, 0, 4, 2):
        pred = i if i % 3 else (i + 1) % num
        top = 0.3 + 0.1 * i
        score = torch.full((num, ), (1 - top) / (num - 1))
        score[pred] = top
        out.append(DataSample(metainfo={'sample_idx': i})
                   .set_gt_label(i).set_pred_label(pred).set_pred_score(score)
                   .to_dict())
    return out


def _listed(folder, kind):
    return mmengine.load(osp.join(folder, kind, f'{kind}.json'))


def test_analyze_results_same_selection_as_mmpretrain_on_one_set(
        tmp_path, fake_iwildcam_root):
    single = str(tmp_path / 'single.pkl')
    mmengine.dump(_scored(), single)
    config = osp.join(ROOT, 'configs', 'smoke', 'drm_tiny_fake_iwildcam.py')
    ours, theirs = str(tmp_path / 'ours'), str(tmp_path / 'theirs')
    _analyze_results().main([
        config, single, '--out-dir', ours, '--topk', '2', '--cfg-options',
        f'data_root={fake_iwildcam_root}'])
    _run([osp.join(MM_TOOLS, 'analysis_tools', 'analyze_results.py'), config,
          single, '--out-dir', theirs, '--topk', '2', '--cfg-options',
          f'test_dataloader.dataset.data_root={fake_iwildcam_root}'])
    # least confident first, as MMPretrain: successes 1, 2; failures 0, 3
    for kind, expected in (('success', [1, 2]), ('fail', [0, 3])):
        listed = _listed(ours, kind)
        assert [e['sample_idx'] for e in listed] == expected
        assert [e['pred_label'] == e['gt_label'] for e in listed] == \
            [kind == 'success'] * 2
        # MMPretrain lists each sample once per field, without its index
        # (here its true label): keep the first
        idx = []
        for e in _listed(theirs, kind):
            if not idx or idx[-1] != e['gt_label'][0]:
                idx.append(e['gt_label'][0])
        assert idx == expected
        assert sorted(os.listdir(osp.join(theirs, kind))) == sorted(
            [osp.basename(e['img_path']) + '.png' for e in listed]
            + [f'{kind}.json'])
        assert len([f for f in os.listdir(osp.join(ours, kind))
                    if f.endswith('.png')]) == 2


def test_analyze_results_per_set_of_a_multi_set_config(
        tmp_path, fake_iwildcam_root):
    multi = str(tmp_path / 'multi.pkl')
    mmengine.dump({'id_test': _scored(), 'test': _scored()}, multi)
    config = osp.join(ROOT, 'configs', 'drm', 'vitb16_iwildcam.py')
    tool, out = _analyze_results(), str(tmp_path / 'out')
    options = ['--cfg-options', f'data_root={fake_iwildcam_root}']
    tool.main([config, multi, '--out-dir', out, '--topk', '2',
               '--most-confident'] + options)
    assert sorted(os.listdir(out)) == ['id_test', 'test']
    for name in ('id_test', 'test'):
        folder = osp.join(out, name)
        assert [e['sample_idx'] for e in _listed(folder, 'success')] == [5, 4]
        assert [e['sample_idx'] for e in _listed(folder, 'fail')] == [3, 0]
    # each set's images come from its own split
    paths = {name: [e['img_path'] for e in _listed(osp.join(out, name),
                                                   'fail')]
             for name in ('id_test', 'test')}
    assert not set(paths['id_test']) & set(paths['test'])
    one = str(tmp_path / 'one')
    tool.main([config, multi, '--out-dir', one, '--set', 'test'] + options)
    assert os.listdir(one) == ['test']
    with pytest.raises(SystemExit, match=r"no set 'val'; the file has "
                       r"\['id_test', 'test'\]"):
        tool.main([config, multi, '--out-dir', one, '--set', 'val'] + options)
    bad = str(tmp_path / 'bad.pkl')
    mmengine.dump({'test': [1, 2]}, bad)
    with pytest.raises(SystemExit, match=r"bad.pkl, set 'test': item 0 is "
                       r'not a prediction with keys .*tools/test.py --out'):
        tool.main([config, bad, '--out-dir', one] + options)
