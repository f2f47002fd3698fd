"""ResumableEpochBasedTrainLoop: a resume from a mid-epoch checkpoint
continues at the next batch of the epoch with the same random draws, so it
ends where the uninterrupted run ends (MMEngine's loop restarts the epoch).
The subprocess SIGKILL version is tests/reliability/test_exact_resume.py."""
import itertools
import shutil

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.runner import EpochBasedTrainLoop
from torch import nn
from torch.utils.data import Dataset

from drm_mm.engine.loops import (ResumableEpochBasedTrainLoop,
                                 iteration_seed)
from drm_mm.engine.runners import DRMRunner

_RUN_IDS = itertools.count()


class _NoisyPoints(Dataset):
    """Points with a numpy-random augmentation (drawn in the main
    process, num_workers=0)."""

    def __len__(self):
        return 14  # batch 4: 4 batches per epoch, the last one short

    def __getitem__(self, idx):
        g = torch.Generator().manual_seed(idx)
        noise = torch.from_numpy(np.random.normal(size=4).astype('float32'))
        return dict(inputs=torch.randn(4, generator=g) + 0.1 * noise,
                    labels=torch.tensor(idx % 2), index=torch.tensor(idx))


class _DropoutNet(BaseModel):
    """A linear model with dropout (torch randomness in the step)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)
        self.seen = []

    def forward(self, inputs, labels, index=None, mode='tensor'):
        logits = self.fc(self.drop(inputs))
        if mode == 'loss':
            self.seen.append(index.tolist())
            return dict(loss=nn.functional.cross_entropy(logits, labels))
        return logits


def _runner(work_dir, max_epochs=2, resume=False, train_cfg=None,
            num_workers=0):
    torch.manual_seed(0)
    return DRMRunner(
        model=_DropoutNet(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=_NoisyPoints(), batch_size=4,
                              num_workers=num_workers,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05)),
        param_scheduler=dict(type='CosineAnnealingLR', by_epoch=True,
                             T_max=max_epochs),
        train_cfg=train_cfg or dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=3, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0, deterministic=True),
        resume=resume,
        default_scope='drm_mm',
        experiment_name=f'resumable_loop_test_{next(_RUN_IDS)}')


def _state(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_drm_runner_uses_the_loop_for_epoch_configs(tmp_path):
    runner = _runner(tmp_path)
    loop = runner.build_train_loop(dict(by_epoch=True, max_epochs=2))
    assert type(loop) is ResumableEpochBasedTrainLoop
    named = runner.build_train_loop(dict(type='EpochBasedTrainLoop',
                                         max_epochs=2))
    assert type(named) is EpochBasedTrainLoop  # an explicit type is kept


def test_mid_epoch_resume_equals_uninterrupted_run(tmp_path):
    full = _runner(tmp_path / 'full')
    full.train()
    assert full.iter == 8

    # 4 batches per epoch: iter_3 is inside epoch 1, iter_6 inside epoch 2
    for start in (3, 6):
        cut = tmp_path / f'cut_{start}'
        cut.mkdir()
        ckpt = f'iter_{start}.pth'
        shutil.copy(tmp_path / 'full' / ckpt, cut / ckpt)
        resumed = _runner(cut, resume=True)
        resumed.train()
        assert resumed.iter == 8
        assert resumed.model.seen == full.model.seen[start:], \
            'the batches after the checkpoint differ'
        for key, value in _state(full).items():
            assert torch.equal(_state(resumed)[key], value), (ckpt, key)


def test_mid_epoch_resume_with_workers_keeps_the_data_order(tmp_path):
    """With loader workers the rest of the epoch comes in the same order
    (the augmentation draws of the workers are not reproduced)."""
    full = _runner(tmp_path / 'full', max_epochs=1, num_workers=2)
    full.train()
    cut = tmp_path / 'cut'
    cut.mkdir()
    shutil.copy(tmp_path / 'full' / 'iter_3.pth', cut / 'iter_3.pth')
    resumed = _runner(cut, max_epochs=1, resume=True, num_workers=2)
    resumed.train()
    assert resumed.model.seen == full.model.seen[3:]


def test_mmengine_loop_restarts_the_epoch(tmp_path):
    """Why the loop exists: MMEngine's loop retrains the seen batches."""
    _runner(tmp_path / 'full').train()
    cut = tmp_path / 'cut'
    cut.mkdir()
    shutil.copy(tmp_path / 'full' / 'iter_3.pth', cut / 'iter_3.pth')
    plain = _runner(cut, resume=True, train_cfg=dict(
        type='EpochBasedTrainLoop', max_epochs=2))
    plain.train()
    assert plain.iter == 3 + 8  # epoch 1 again in full, then epoch 2


def test_batches_done_in_epoch(tmp_path):
    runner = _runner(tmp_path)
    loop = runner.build_train_loop(dict(by_epoch=True, max_epochs=2))
    loop._epoch, loop._iter = 1, 2  # not in epoch 2: restart it (warned)
    assert loop.batches_done_in_epoch() == 0
    loop._epoch, loop._iter = 1, 6
    assert loop.batches_done_in_epoch() == 2


def test_iteration_seed_is_a_pure_function():
    assert iteration_seed(0, 5) == 161328693  # same value in every process
    seeds = {iteration_seed(s, i) for s in range(3) for i in range(100)}
    assert len(seeds) == 300
    assert all(0 <= s < 2**32 for s in seeds)


def test_the_configs_name_the_loop_and_schedules_merge_into_it():
    """The loop is named with the schedule; an MMPretrain-style
    ``by_epoch=True`` merged onto it is dropped, ``by_epoch=False`` is a
    clear error (MMEngine itself refuses ``type`` with ``by_epoch``)."""
    import pytest
    from mmengine.config import Config

    from drm_mm.engine.loops.resumable_epoch_based_train_loop import \
        resolve_train_loop
    from drm_mm.utils import get_config_path
    cfg = Config.fromfile(get_config_path('drm/vitb16_iwildcam.py'))
    assert cfg.train_cfg == dict(type='drm_mm.ResumableEpochBasedTrainLoop',
                                 max_epochs=20, val_interval=1)
    cfg.merge_from_dict(dict(train_cfg=dict(by_epoch=True, max_epochs=5)))
    assert resolve_train_loop(cfg.train_cfg.to_dict()) == dict(
        type='drm_mm.ResumableEpochBasedTrainLoop', max_epochs=5,
        val_interval=1)
    with pytest.raises(ValueError, match=r"train_cfg.by_epoch=False with "
                       r"drm_mm.ResumableEpochBasedTrainLoop: for an "
                       r"iteration-based schedule write train_cfg = "
                       r"dict\(_delete_=True, type='IterBasedTrainLoop'"):
        resolve_train_loop(dict(type='drm_mm.ResumableEpochBasedTrainLoop',
                                by_epoch=False, max_iters=4))


def test_a_config_without_loop_type_gets_this_loop():
    from drm_mm.engine.loops.resumable_epoch_based_train_loop import \
        resolve_train_loop
    loop = resolve_train_loop(dict(by_epoch=True, max_epochs=2))
    assert loop == dict(type=ResumableEpochBasedTrainLoop, max_epochs=2)
    assert resolve_train_loop(dict(type='IterBasedTrainLoop',
                                   max_iters=3)) == dict(
        type='IterBasedTrainLoop', max_iters=3)
