"""DRMFlexibleRunner (single device here; the 2-rank FSDP run is in
tests/reliability/test_fsdp_equivalence.py): safe and strict loading,
atomic checkpoints, resume past a truncated checkpoint, the resumable
epoch loop, the class check of DRMRunner, and the one-process fallback
to DRMRunner."""
import itertools
import os

import _tiny_runner as T  # loaded by this folder's conftest.py
import pytest
import torch
from mmengine.config import Config

from drm_mm.engine.hooks import (ClassConsistencyHook, ClassMismatchError,
                                 SoftLabelCacheHook)
from drm_mm.engine.loops import ResumableEpochBasedTrainLoop
from drm_mm.engine.runners import DRMFlexibleRunner, DRMRunner
from drm_mm.engine.wise_ft import CheckpointMismatchError
from drm_mm.utils import UnsafeCheckpointError

_RUN_IDS = itertools.count()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


class _NamedPoints(T.Points):
    metainfo = dict(classes=('cat', 'dog'))


def _runner(work_dir, max_iters=2, resume=False, load_from=None, width=4,
            by_epoch=False, dataset=None, custom_hooks=None):
    torch.manual_seed(0)
    train_cfg = (dict(by_epoch=True, max_epochs=1) if by_epoch else
                 dict(by_epoch=False, max_iters=max_iters))
    return DRMFlexibleRunner(
        model=T.Linear(width),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=dataset or T.Points(), batch_size=4,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=train_cfg,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=by_epoch),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=custom_hooks,
        randomness=dict(seed=0), resume=resume, load_from=load_from,
        default_scope='drm_mm',
        experiment_name=f'drm_flexible_runner_test_{next(_RUN_IDS)}')


def test_checkpoints_written_atomically(tmp_path, monkeypatch):
    _runner(tmp_path, max_iters=2).train()
    assert (tmp_path / 'iter_2.pth').exists()
    assert not list(tmp_path.glob('*.tmp'))
    good = (tmp_path / 'iter_2.pth').read_bytes()

    import mmengine.runner.checkpoint as checkpoint_module

    def crash_mid_write(checkpoint, filepath, **kwargs):
        with open(filepath, 'wb') as f:
            f.write(b'PK\x03\x04 partial')
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(checkpoint_module, 'save_checkpoint',
                        crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        _runner(tmp_path, max_iters=4, resume=True).train()
    monkeypatch.undo()
    assert not (tmp_path / 'iter_4.pth').exists()
    assert (tmp_path / 'iter_2.pth').read_bytes() == good


def test_resume_skips_truncated_latest(tmp_path, caplog):
    _runner(tmp_path, max_iters=4).train()
    (tmp_path / 'iter_4.pth').write_bytes(b'PK\x03\x04 truncated')
    runner = _runner(tmp_path, max_iters=6, resume=True)
    runner.train()
    assert runner.iter == 6
    text = (tmp_path / 'last_checkpoint').read_text()
    assert text.endswith('iter_6.pth')


def test_load_from_refuses_crafted_pickle(tmp_path):
    marker = tmp_path / 'pwned'

    class Payload:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'fc.weight': Payload()}}, evil)
    runner = _runner(tmp_path / 'w', load_from=str(evil))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        runner.train()
    assert not marker.exists()


def test_checkpoint_of_another_model_is_refused(tmp_path):
    _runner(tmp_path / 'a', max_iters=2, width=4).train()
    other = _runner(tmp_path / 'b', load_from=str(tmp_path / 'a' /
                                                  'iter_2.pth'), width=3)
    with pytest.raises(CheckpointMismatchError, match='iter_2.pth'):
        other.train()


def test_by_epoch_builds_the_resumable_loop(tmp_path):
    runner = _runner(tmp_path, by_epoch=True)
    runner.train()
    assert type(runner.train_loop) is ResumableEpochBasedTrainLoop
    assert runner.epoch == 1 and (tmp_path / 'epoch_1.pth').exists()


def test_runner_refuses_class_mismatch_before_training(tmp_path):
    runner = _runner(tmp_path, dataset=_NamedPoints())
    assert sum(isinstance(h, ClassConsistencyHook)
               for h in runner.hooks) == 1
    runner.model.classnames = ['cat', 'cow']
    with pytest.raises(ClassMismatchError) as err:
        runner.train()
    assert str(err.value) == (
        "_NamedPoints (train_dataloader.dataset) does not match the model: "
        "label 1 is 'dog' in the dataset but 'cow' in the model. Use the "
        'model config of this dataset (model.classnames) or the dataset of '
        'this model.')
    assert not list(tmp_path.glob('*.pth'))


class _RecordingSoftLabels(SoftLabelCacheHook):
    """Stands for the teacher's pass, which runs before sharding."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def before_train(self, runner):
        self.calls += 1


def test_class_mismatch_stops_before_the_soft_label_pass(tmp_path):
    soft = _RecordingSoftLabels()
    runner = _runner(tmp_path, dataset=_NamedPoints(),
                     custom_hooks=[ClassConsistencyHook(), soft])
    assert sum(isinstance(h, ClassConsistencyHook)
               for h in runner.hooks) == 1  # the config's, not a second
    runner.model.classnames = ['dog', 'cat']
    with pytest.raises(ClassMismatchError, match=r"^_NamedPoints "
                       r"\(train_dataloader.dataset\) does not match the "
                       r"model: label 0 is 'cat' in the dataset but 'dog'"):
        runner.train()
    assert soft.calls == 0
    runner = _runner(tmp_path / 'ok', dataset=_NamedPoints(),
                     custom_hooks=[_RecordingSoftLabels()])
    runner.model.classnames = ['cat', 'dog']
    runner.train()  # agrees: the pass runs once, training goes on
    assert [h.calls for h in runner.hooks
            if isinstance(h, _RecordingSoftLabels)] == [1]
    assert runner.iter == 2


def test_one_process_config_runs_with_drm_runner(tmp_path):
    cfg = Config.fromfile(os.path.join(
        ROOT, 'configs', 'smoke', 'drm_tiny_fake_iwildcam.py'))
    cfg.merge_from_dict(dict(
        runner_type='drm_mm.DRMFlexibleRunner', launcher='none',
        strategy=dict(type='drm_mm.DRMFSDPStrategy'),
        work_dir=str(tmp_path), train_dataloader=None, train_cfg=None,
        optim_wrapper=None, param_scheduler=None, val_dataloader=None,
        val_cfg=None, val_evaluator=None))
    runner = DRMFlexibleRunner.from_cfg(cfg)
    assert type(runner) is DRMRunner
