"""DivergenceGuardHook: stop or skip on a NaN loss, weights untouched."""
import itertools

import pytest
import torch
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import Dataset

from drm_mm.engine.hooks.divergence_guard_hook import (DivergenceError,
                                                       DivergenceGuardHook)
from drm_mm.engine.runners import DRMRunner

_IDS = itertools.count()


class _Data(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return dict(inputs=torch.full((2, ), float(idx)),
                    labels=torch.tensor(idx % 2))


class _NaNAt(BaseModel):
    """A linear model whose loss is NaN at the given (1-based) call."""

    def __init__(self, nan_at):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.nan_at, self.calls = nan_at, 0

    def forward(self, inputs, labels, mode='tensor'):
        self.calls += 1
        loss = nn.functional.cross_entropy(self.fc(inputs), labels)
        if self.calls == self.nan_at:
            loss = loss * float('nan')
        return dict(loss=loss)


def _runner(tmp_path, action, nan_at=3):
    return DRMRunner(
        model=_NaNAt(nan_at), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=_Data(), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False)),
        custom_hooks=[dict(type='DivergenceGuardHook', action=action)],
        default_scope='drm_mm', experiment_name=f'guard_{next(_IDS)}')


def test_stop_keeps_weights_and_last_checkpoint(tmp_path):
    runner = _runner(tmp_path, 'stop')
    with pytest.raises(DivergenceError, match='iteration 3'):
        runner.train()
    ckpt = torch.load(tmp_path / 'iter_2.pth', weights_only=False)
    assert torch.isfinite(runner.model.fc.weight).all()
    assert torch.equal(ckpt['state_dict']['fc.weight'],
                       runner.model.fc.weight.detach())
    assert not (tmp_path / 'iter_4.pth').exists()


def test_skip_counts_and_continues(tmp_path):
    runner = _runner(tmp_path, 'skip')
    runner.train()
    guard = [h for h in runner.hooks
             if isinstance(h, DivergenceGuardHook)][0]
    assert guard.skipped == 1 and runner.iter == 4
    assert torch.isfinite(runner.model.fc.weight).all()


def test_bad_action():
    with pytest.raises(ValueError, match="one of \\('stop', 'skip'\\)"):
        DivergenceGuardHook(action='ignore')
