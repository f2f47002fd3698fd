"""DivergenceGuardOptimWrapper: stop or skip on a NaN loss, weights and
optimizer state untouched; on by default in the paper configs; the old
DivergenceGuardHook only checks the wrapper."""
import glob
import itertools
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import nn
from torch.utils.data import Dataset

from drm_mm.engine.hooks import DivergenceGuardHook
from drm_mm.engine.optim_wrappers import (DivergenceError,
                                          DivergenceGuardAmpOptimWrapper,
                                          DivergenceGuardOptimWrapper)
from drm_mm.engine.runners import DRMRunner

_IDS = itertools.count()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


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


def _runner(tmp_path, wrapper, nan_at=3, hooks=()):
    return DRMRunner(
        model=_NaNAt(nan_at), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=_Data(), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(wrapper, optimizer=dict(type='Adam', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False)),
        custom_hooks=list(hooks),
        default_scope='drm_mm', experiment_name=f'guard_{next(_IDS)}')


STOP = dict(type='DivergenceGuardOptimWrapper')
SKIP = dict(type='DivergenceGuardOptimWrapper', on_nonfinite='skip')


def test_stop_keeps_weights_and_last_checkpoint(tmp_path):
    runner = _runner(tmp_path, STOP)
    with pytest.raises(DivergenceError) as err:
        runner.train()
    assert str(err.value) == (
        f'Loss became nan at iteration 3 (epoch 1); training stopped before '
        f'the update, so the last checkpoint, {tmp_path / "iter_2.pth"}, is '
        'the last good one. Lower the learning rate, set '
        "optim_wrapper.clip_grad, or set optim_wrapper.on_nonfinite='skip'.")
    ckpt = torch.load(tmp_path / 'iter_2.pth', weights_only=False)
    assert torch.equal(ckpt['state_dict']['fc.weight'],
                       runner.model.fc.weight.detach())
    state = runner.optim_wrapper.optimizer.state_dict()['state']
    assert all(s['step'].item() == 2 for s in state.values())
    assert not (tmp_path / 'iter_4.pth').exists()


def test_skip_counts_and_continues(tmp_path):
    runner = _runner(tmp_path, SKIP)
    runner.train()
    assert runner.optim_wrapper.skipped == 1 and runner.iter == 4
    state = runner.optim_wrapper.optimizer.state_dict()['state']
    assert all(s['step'].item() == 3 for s in state.values())  # 4 - 1
    assert torch.isfinite(runner.model.fc.weight).all()
    assert runner.message_hub.get_scalar(
        'train/skipped_steps').current() == 1


def test_skip_stops_after_max_skips(tmp_path):
    runner = _runner(tmp_path, dict(SKIP, max_skips=0))
    with pytest.raises(DivergenceError, match='at iteration 3 '):
        runner.train()


def test_wrappers_are_mmengine_wrappers():
    assert issubclass(DivergenceGuardOptimWrapper, OptimWrapper)
    assert issubclass(DivergenceGuardAmpOptimWrapper, AmpOptimWrapper)


@pytest.mark.parametrize('kwargs,word', [(dict(on_nonfinite='ignore'),
                                          'on_nonfinite'),
                                         (dict(max_skips=-1), 'max_skips')])
def test_bad_arguments(kwargs, word):
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=f'optim_wrapper.{word} must be'):
        DivergenceGuardOptimWrapper(optimizer=optimizer, **kwargs)


def test_paper_configs_guard_by_default():
    paper = sorted(glob.glob(os.path.join(ROOT, 'configs', 'drm', '*.py')))
    assert len(paper) >= 10
    for path in paper:
        wrapper = Config.fromfile(path).optim_wrapper
        amp = 'dtype' in wrapper
        assert wrapper.type == ('drm_mm.DivergenceGuardAmpOptimWrapper'
                                if amp else
                                'drm_mm.DivergenceGuardOptimWrapper'), path
        assert wrapper.get('on_nonfinite') == 'stop', path


def test_old_hook_only_checks_the_wrapper(tmp_path):
    runner = _runner(tmp_path, dict(type='OptimWrapper'),
                     hooks=[DivergenceGuardHook()])
    with pytest.raises(ValueError) as err:
        runner.train()
    assert str(err.value) == (
        'DivergenceGuardHook: optim_wrapper is OptimWrapper, which does not '
        "guard the loss; set optim_wrapper.type='drm_mm.DivergenceGuard"
        "OptimWrapper' (or 'drm_mm.DivergenceGuardAmpOptimWrapper' with AMP)"
        ' and remove the hook.')
    runner = _runner(tmp_path / 'b', STOP, nan_at=99,
                     hooks=[DivergenceGuardHook()])
    runner.train()
    assert runner.iter == 4
    with pytest.raises(ValueError, match="one of \\('stop', 'skip'\\)"):
        DivergenceGuardHook(action='ignore')
