"""An OpenMMLab user's project: a config in a directory outside this
repository inherits a drm_mm DRM config with ``default_scope='mmpretrain'``
and only ``custom_imports``, and points every split at its data with one
``data_root``; MMPretrain's installed tools/train.py trains
it, ``--resume auto`` continues, tools/test.py ``--out`` holds every test
set, and a 2-rank gloo run (torchrun + ``--launcher pytorch``) completes."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

import mmpretrain
from drm_mm.datasets.classnames import get_classnames
from drm_mm.utils import get_config_path

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MM_TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
SETS = ('id_val', 'id_test', 'val', 'test')

# The top, pipelines and loaders of a user's child config of a drm_mm
# config (format fields: base, root, sets); each test adds its own model
# and schedule.
CHILD_TOP = '''_base_ = [{base!r}]
default_scope = 'mmpretrain'
custom_imports = dict(imports=['drm_mm'], allow_failed_imports=False)
data_root = {root!r}
test_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=32),
    dict(type='ResizeEdge', scale=32, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
train_pipeline = [
    dict(type='drm_mm.LoadImageDraft', min_size=32),
    dict(type='RandomResizedCrop', scale=32, backend='pillow'),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
'''
CHILD_LOADERS = '''loader = dict(num_workers=0, persistent_workers=False, pin_memory=False)
train_dataloader = dict(batch_size=8, **loader,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=16, **loader, id_val=dict(dataset=dict(
    pipeline=test_pipeline)))
test_dataloader = dict(
    batch_size=16, **loader, dataset=dict(pipeline=test_pipeline),
    **{{s: dict(dataset=dict(pipeline=test_pipeline)) for s in {sets!r}}})
'''
CHILD = CHILD_TOP + '''model = dict(clip=dict(model_name='drm-tiny-vit', pretrained=None),
             classnames={names!r}, templates=['a photo of a {{c}}.'],
             descriptions=dict(_delete_=True, **{descriptions!r}))
''' + CHILD_LOADERS + '''train_cfg = dict(max_epochs=2)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                        begin=0, end=2)]
custom_hooks = [dict(type='drm_mm.SoftLabelCacheHook', batch_size=16,
                     cache_dir={cache!r})]
default_hooks = dict(logger=dict(interval=1))
'''


@pytest.fixture
def child_config(tmp_path, fake_iwildcam_root):
    names = get_classnames('iwildcam')[:6]
    with open(osp.join(ROOT, 'drm_mm', 'prompts', 'iwildcam.json')) as f:
        table = json.load(f)
    path = tmp_path / 'my_project' / 'configs' / 'my_drm.py'
    path.parent.mkdir(parents=True)
    path.write_text(CHILD.format(
        base=get_config_path('drm/vitb16_iwildcam.py'),
        root=str(fake_iwildcam_root), names=list(names),
        descriptions={n: table[n][:2] for n in names}, sets=SETS,
        cache=str(tmp_path / 'cache')))
    return str(path)


def _run(args, cwd, timeout=900):
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1',
               OMP_NUM_THREADS='1')
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_mmpretrain_train_resume_test(tmp_path, child_config):
    from mmengine import load
    work = str(tmp_path / 'work')
    cwd = str(tmp_path / 'my_project')
    train = [osp.join(MM_TOOLS, 'train.py'), child_config, '--work-dir',
             work]
    _run(train + ['--cfg-options', 'train_cfg.max_epochs=1'], cwd)
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    log = _run(train + ['--resume', 'auto'], cwd)
    assert 'Auto resume from' in log and 'epoch_1.pth' in log
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    out = str(tmp_path / 'preds.pkl')
    log = _run([osp.join(MM_TOOLS, 'test.py'), child_config,
                osp.join(work, 'epoch_2.pth'), '--work-dir', work, '--out',
                out], cwd)
    assert 'test/macro_f1' in log
    preds = load(out)
    assert list(preds) == list(SETS)
    for s in SETS:
        # every sample once, each prediction the argmax of its scores
        assert sorted(p['sample_idx'] for p in preds[s]) == list(
            range(len(preds[s]))) and preds[s], s
        assert all(int(p['pred_label']) == int(p['pred_score'].argmax())
                   for p in preds[s]), s


@pytest.mark.slow
def test_mmpretrain_train_two_ranks_gloo(tmp_path, child_config):
    work = str(tmp_path / 'work_ddp')
    _run(['-m', 'torch.distributed.run', '--nproc_per_node', '2',
          '--master_port', '29731', osp.join(MM_TOOLS, 'train.py'),
          child_config, '--launcher', 'pytorch', '--work-dir', work,
          '--cfg-options', 'train_cfg.max_epochs=1'],
         str(tmp_path / 'my_project'))
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


@pytest.mark.slow
def test_mmpretrain_train_smoke_config_without_extra_flags(
        tmp_path, fake_iwildcam_root):
    """MMPretrain's train.py adds persistent_workers=True to every loader;
    the smoke configs (num_workers=0) say False themselves, and one
    --cfg-options key moves every split."""
    work = str(tmp_path / 'work')
    _run([osp.join(MM_TOOLS, 'train.py'),
          get_config_path('smoke/drm_tiny_fake_iwildcam.py'), '--work-dir',
          work, '--cfg-options', f'data_root={fake_iwildcam_root}',
          'train_cfg.max_epochs=1'], str(tmp_path))
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


BASELINE_CHILD = CHILD_TOP + '''model = dict(clip=dict(model_name='drm-tiny-vit', pretrained=None),
             classnames={names!r}, templates=['a photo of a {{c}}.'])
''' + CHILD_LOADERS + '''train_cfg = dict(max_epochs=1)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                        begin=0, end=2)]
default_hooks = dict(logger=dict(interval=1))
'''


@pytest.mark.slow
@pytest.mark.parametrize('method', ['l2sp', 'carft', 'lipsum'])
def test_mmpretrain_tools_train_and_test_a_regulariser_baseline(
        tmp_path, fake_iwildcam_root, method):
    """A user's child of ``configs/baselines/<method>_vitb16_iwildcam.py``
    (tiny CLIP, fake iWildCam) trains with MMPretrain's train.py, logs the
    regulariser's loss, and tests on every set with its test.py."""
    path = tmp_path / 'my_project' / f'my_{method}.py'
    path.parent.mkdir(parents=True)
    path.write_text(BASELINE_CHILD.format(
        base=get_config_path(f'baselines/{method}_vitb16_iwildcam.py'),
        root=str(fake_iwildcam_root),
        names=list(get_classnames('iwildcam')[:6]), sets=SETS))
    work = str(tmp_path / 'work')
    cwd = str(path.parent)
    log = _run([osp.join(MM_TOOLS, 'train.py'), str(path), '--work-dir',
                work], cwd)
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    term = dict(l2sp='loss_l2sp', carft='loss_carft', lipsum='loss_lipsum')
    assert f'{term[method]}: ' in log, log[-2000:]
    log = _run([osp.join(MM_TOOLS, 'test.py'), str(path),
                osp.join(work, 'epoch_1.pth'), '--work-dir', work], cwd)
    for s in SETS:
        assert f'{s}/macro_f1: ' in log, s
