"""Sharded training (``DRMFlexibleRunner`` + ``DRMFSDPStrategy``, two gloo
ranks, ``save_best`` as in the paper configs, 3 epochs of 3 batches)
SIGKILLed inside every epoch and at epoch ends, each time resumed with
``--resume``, ends bitwise equal to the uninterrupted sharded run: every
step of every rank, every validation row, the final weights and
optimizer state. MMEngine 0.10.7's FlexibleRunner stored ``epoch + 1`` in
the epoch checkpoint written again after a validation, and a resume
skipped an epoch."""
import subprocess
import sys

import pytest
from mmengine.config import Config

import _reliability_helpers as H  # loaded by this folder's conftest.py

BODY = '''
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
randomness = dict(seed=0, deterministic=True)
train_cfg = dict(max_epochs=3)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=2,
                                     save_best='id_val/macro_f1',
                                     rule='greater'))
val_dataloader = dict(_delete_=True, batch_size=16, num_workers=0,
                      dataset=dict(type='WILDSIWildCam', data_root={root!r},
                                   split='id_val', pipeline=_test_pipeline),
                      sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(_delete_=True, type='IWildCamMetric', prefix='id_val')
custom_hooks = [dict(type='SoftLabelCacheHook', batch_size=32,
                     pipeline=_test_pipeline),
                dict(type='ReliabilityRecordHook'),
                dict(type='ReliabilityKillHook'),
                dict(type='ReliabilityEpochEndKillHook')]
'''
PLAIN = """pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
], """
#: Kill points in order, one run each: (variable, value). Iterations are
#: 1-based; 3 per epoch.
KILLS = [(H.KILL_ENV, '2'),                 # inside epoch 1
         (H.EPOCH_KILL_ENV, 'val:1'),      # epoch 1 done, best written
         (H.KILL_ENV, '5'),                 # inside epoch 2
         (H.EPOCH_KILL_ENV, 'train:2'),    # epoch 2 saved, not validated
         (H.KILL_ENV, '7'),                 # first batch of epoch 3
         (H.KILL_ENV, '9')]                 # last batch, before its save


def _dist_train(config, work_dir, *args, env=None):
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    extra = dict(PYTHON=sys.executable, PORT=str(H.free_port()))
    extra.update(env or {})
    proc = subprocess.run(
        ['bash', str(H.REPO / 'tools' / 'dist_train.sh'), str(config), '2',
         '--work-dir', str(work_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=H.train_env(extra), cwd=work_dir.parent, timeout=600)
    return proc.returncode, proc.stdout.decode(errors='replace')


def _rows(path):
    """Steps by iteration; a step recorded twice must repeat bitwise."""
    rows = {}
    for row in H.read_jsonl(path):
        if row['iter'] in rows:
            assert row == rows[row['iter']], row
        rows[row['iter']] = row
    return [rows[i] for i in sorted(rows)]


@pytest.mark.slow  # 1 + 7 two-rank runs of 9 tiny steps (~4 min, 2 cores)
def test_fsdp_kills_in_and_between_epochs_resume_bitwise(
        tmp_path, fake_iwildcam_root):
    names, desc = H.tiny_class_setup(tmp_path)
    runtime = Config.fromfile(str(H.REPO / 'configs' / '_base_' /
                                  'fsdp_runtime.py'))
    body = (BODY.format(root=str(fake_iwildcam_root)) +
            f'model = dict(classnames={names!r}, '
            f'descriptions={str(desc)!r})\n'
            f'runner_type = {runtime.runner_type!r}\n'
            f'strategy = {runtime.strategy.to_dict()!r}\n')
    config = H.write_config(tmp_path / 'fsdp.py', fake_iwildcam_root, body,
                            train_loader='batch_size=6, ',
                            train_dataset=PLAIN)
    full, cut = tmp_path / 'full' / 'work', tmp_path / 'cut' / 'work'
    code, log = _dist_train(config, full)
    assert code == 0, H.tail(log)
    assert 'FSDP units' in log

    outputs = []
    for variable, value in KILLS:
        code, log = _dist_train(config, cut, '--resume',
                                env={variable: value})
        outputs.append(log)
        assert code != 0, (variable, value, H.tail(log))
    code, log = _dist_train(config, cut, '--resume')
    assert code == 0, H.tail(log)
    assert 'does not fit' not in ''.join(outputs) + log
    # the kill after epoch 2's save: its validation ran on resume
    assert ('The validation of epoch 2 did not finish before the run '
            'stopped: running it now.') in outputs[4]

    for rank in (0, 1):
        ref = _rows(full / f'outputs_rank{rank}.jsonl')
        got = _rows(cut / f'outputs_rank{rank}.jsonl')
        assert [r['iter'] for r in ref] == list(range(1, 10))
        assert got == ref, rank
    rows_full, rows_cut = H.scalar_rows(full), H.scalar_rows(cut)
    assert sorted(k for k in rows_full if k[0] == 'val') == [
        ('val', 1), ('val', 2), ('val', 3)]
    assert rows_cut == rows_full
    names = sorted(p.name for p in full.glob('*.pth'))
    assert sorted(p.name for p in cut.glob('*.pth')) == names
    for name in names:
        a = H.load_checkpoint(full / name)
        b = H.load_checkpoint(cut / name)
        assert (a['meta']['epoch'], a['meta']['iter']) == (
            b['meta']['epoch'], b['meta']['iter']), name
        assert H.tensors_equal(a['state_dict'], b['state_dict']) == [], name
    final = H.load_checkpoint(full / 'epoch_3.pth')
    assert (final['meta']['epoch'], final['meta']['iter']) == (3, 9)
    a = final['optimizer']['state']
    b = H.load_checkpoint(cut / 'epoch_3.pth')['optimizer']['state']
    for idx in a:
        assert H.tensors_equal(a[idx], b[idx]) == [], idx
    assert not list(cut.glob('*.tmp'))
