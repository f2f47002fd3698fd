"""Both runners (``DRMRunner``, and ``DRMFlexibleRunner`` in one process)
store the train loop's true position in every checkpoint and resume
exactly from it: from an epoch checkpoint written again after a
validation (``save_best``; MMEngine 0.10.7's FlexibleRunner stored the
next epoch there), and from an iteration checkpoint written at an epoch's
last batch (the epoch must not restart)."""
import itertools
import shutil

import _tiny_runner as T  # loaded by this folder's conftest.py
import pytest
import torch
from mmengine.hooks import Hook

from drm_mm.engine.runners import DRMFlexibleRunner, DRMRunner
from drm_mm.utils.safe_checkpoint import load_trusted_checkpoint

_IDS = itertools.count()
PER_EPOCH = 4  # 16 points, batch 4


class _Linear(T.Linear):
    """Predicts ``(predicted, true)`` label pairs for the accuracy metric."""

    def forward(self, inputs, labels, mode='tensor'):
        out = super().forward(inputs, labels, mode)
        if mode == 'loss':
            return out
        return list(zip(out.argmax(1).tolist(), labels.tolist()))


class _Score(Hook):
    """Every validation is a new best (``score`` = epoch)."""

    priority = 'HIGHEST'

    def after_val_epoch(self, runner, metrics=None):
        metrics['score'] = float(runner.epoch)


class _Steps(Hook):
    """Counts the optimizer steps of this process."""

    def __init__(self):
        self.iters = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.iters.append(runner.iter + 1)


def _metric():
    from mmengine.evaluator import BaseMetric

    class _Acc(BaseMetric):

        def process(self, data_batch, data_samples):
            self.results.extend(data_samples)

        def compute_metrics(self, results):
            return dict(acc=sum(p == y for p, y in results) / len(results))

    return _Acc()


def _runner(kind, work_dir, checkpoint, resume=False, steps=None):
    torch.manual_seed(0)
    loader = dict(dataset=T.Points(), batch_size=4,
                  sampler=dict(type='DefaultSampler', shuffle=True),
                  collate_fn=dict(type='default_collate'))
    return kind(
        model=_Linear(), work_dir=str(work_dir), train_dataloader=loader,
        val_dataloader=dict(loader, sampler=dict(type='DefaultSampler',
                                                 shuffle=False)),
        val_evaluator=[_metric()], val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           **checkpoint)),
        custom_hooks=[_Score()] + ([steps] if steps else []),
        randomness=dict(seed=0, deterministic=True), resume=resume,
        default_scope='drm_mm',
        experiment_name=f'resume_position_{next(_IDS)}')


BEST = dict(interval=1, save_best='score', rule='greater')
LAST_BATCH = dict(interval=PER_EPOCH, by_epoch=False)


@pytest.mark.parametrize('kind', [DRMRunner, DRMFlexibleRunner])
def test_epoch_checkpoints_store_their_own_epoch(tmp_path, kind):
    _runner(kind, tmp_path, BEST).train()
    for epoch in (1, 2, 3):
        meta = load_trusted_checkpoint(
            str(tmp_path / f'epoch_{epoch}.pth'))['meta']
        assert (meta['epoch'], meta['iter']) == (epoch, PER_EPOCH * epoch)


@pytest.mark.parametrize('kind', [DRMRunner, DRMFlexibleRunner])
@pytest.mark.parametrize('checkpoint,name', [(BEST, 'epoch_1.pth'),
                                             (LAST_BATCH, 'iter_4.pth'),
                                             (LAST_BATCH, 'iter_8.pth')])
def test_resume_continues_exactly(tmp_path, kind, checkpoint, name):
    full = _runner(kind, tmp_path / 'full', checkpoint)
    full.train()
    # a run stopped right after `name` was written: its work dir has it
    cut = tmp_path / 'cut'
    cut.mkdir()
    shutil.copy(tmp_path / 'full' / name, cut / name)
    (cut / 'last_checkpoint').write_text(str(cut / name))
    steps = _Steps()
    resumed = _runner(kind, cut, checkpoint, resume=True, steps=steps)
    resumed.train()
    done = int(name.split('_')[1].split('.')[0]) * (
        PER_EPOCH if name.startswith('epoch') else 1)
    assert steps.iters == list(range(done + 1, 3 * PER_EPOCH + 1))
    assert resumed.iter == full.iter == 3 * PER_EPOCH
    assert resumed.epoch == full.epoch == 3
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
