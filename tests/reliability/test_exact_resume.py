"""Exact resume: a DRM run killed with SIGKILL in the middle of an epoch and
restarted with ``--resume auto`` ends bitwise-identical to an uninterrupted
run (weights, optimizer state, every logged scalar), and the AMP loss-scaler
state survives DRMRunner's save / resume.

Atomic writes and the fall-back past a truncated latest checkpoint are
covered in ``tests/engine/runners/test_drm_runner.py``; the loop that makes
mid-epoch resume exact in ``tests/engine/loops/``.
"""
import functools
import itertools
import signal

import pytest
import torch
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import Dataset

import _reliability_helpers as H  # loaded by this folder's conftest.py

# 36 fake training images, batch 8: 5 iterations per epoch, 10 in all.
# Checkpoints every 3 iterations (iter_3 is in the middle of epoch 1); the
# warm-up (iterations 0-4) and the per-epoch cosine both cross the resume
# point; the run is killed after iteration 5, before the epoch-end
# validation.
RESUME_BODY = '''
randomness = dict(seed=0, deterministic=True)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=3, max_keep_ckpts=2))
custom_hooks = [dict(type='SoftLabelCacheHook', batch_size=32),
                dict(type='ReliabilityKillHook')]
'''


@pytest.mark.slow  # three short training subprocesses (~1 min on 2 cores)
def test_sigkill_mid_epoch_then_resume_auto_matches_uninterrupted_run(
        tmp_path, fake_iwildcam_root):
    classes = H.tiny_class_setup(tmp_path)
    config = H.write_config(tmp_path / 'drm_resume.py', fake_iwildcam_root,
                            RESUME_BODY, classes=classes)
    full_dir = tmp_path / 'runs' / 'full'
    cut_dir = tmp_path / 'runs' / 'cut'

    # the uninterrupted run and the one killed after iteration 5, together
    full = H.start_train(config, full_dir)
    cut = H.start_train(config, cut_dir, env={H.KILL_ENV: '5'})
    code, out = H.finish(full, full_dir)
    assert code == 0, H.tail(out)
    code, out = H.finish(cut, cut_dir)
    assert code == -signal.SIGKILL, H.tail(out)
    assert sorted(p.name for p in cut_dir.glob('*.pth')) == ['iter_3.pth']

    # what a kill during the next checkpoint write would leave behind
    stale = cut_dir / 'iter_6.pth.tmp'
    stale.write_bytes((cut_dir / 'iter_3.pth').read_bytes()[:4096])

    before = len(out)
    code, out = H.run_train(config, cut_dir, '--resume')
    out = out[before:]
    assert code == 0, H.tail(out)
    assert f'Auto resume from {cut_dir / "iter_3.pth"}' in out
    assert 'resumed epoch: 0, iter: 3' in out
    assert 'Resuming epoch 1 after its first 3 batches' in out
    assert 'loaded soft labels (36, 6) from cache' in out
    assert not list(cut_dir.glob('*.tmp')), 'a .tmp file was left behind'
    assert (cut_dir / 'last_checkpoint').read_text().strip() == str(
        cut_dir / 'iter_10.pth')

    # every logged scalar of every step (train and val), killed run and
    # resumed run together, equals the uninterrupted run's, exactly
    full_rows, cut_rows = H.scalar_rows(full_dir), H.scalar_rows(cut_dir)
    assert sorted(full_rows) == sorted(
        [('train', i) for i in range(1, 11)] + [('val', 1), ('val', 2)])
    assert cut_rows == full_rows

    # final weights, optimizer and scheduler state: bitwise equal
    a = H.load_checkpoint(full_dir / 'iter_10.pth')
    b = H.load_checkpoint(cut_dir / 'iter_10.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 10
    assert H.tensors_equal(a['state_dict'], b['state_dict']) == []
    state_a, state_b = a['optimizer']['state'], b['optimizer']['state']
    assert state_a.keys() == state_b.keys()
    for idx in state_a:
        assert H.tensors_equal(state_a[idx], state_b[idx]) == [], idx
    assert a['param_schedulers'] == b['param_schedulers']


# --------------------------------------------------------------------------
# AMP: the loss-scaler state is part of the checkpoint and comes back on
# resume. CPU has no CUDA GradScaler, so AmpOptimWrapper is given torch's
# CPU GradScaler (what MMEngine builds on a GPU is the CUDA one with the same
# state_dict).

_RUN_IDS = itertools.count()


class _Points(Dataset):

    def __len__(self):
        return 12

    def __getitem__(self, idx):
        g = torch.Generator().manual_seed(idx)
        return dict(inputs=torch.randn(4, generator=g),
                    labels=torch.tensor(idx % 2))


class _Linear(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, inputs, labels, mode='tensor'):
        logits = self.fc(inputs).float()
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(logits, labels))
        return logits


@pytest.fixture
def cpu_amp(monkeypatch):
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp
    monkeypatch.setattr(amp, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(amp, 'GradScaler',
                        functools.partial(torch.amp.GradScaler, 'cpu'))


def _amp_runner(work_dir, max_iters, resume=False):
    from drm_mm.engine.runners import DRMRunner
    torch.manual_seed(0)
    return DRMRunner(
        model=_Linear(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=_Points(), batch_size=4,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(type='AmpOptimWrapper', dtype='bfloat16',
                           loss_scale=dict(init_scale=512.0,
                                           growth_interval=1),
                           optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=max_iters // 3),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0, deterministic=True),
        resume=resume,
        default_scope='drm_mm',
        experiment_name=f'amp_resume_test_{next(_RUN_IDS)}')


def test_amp_loss_scaler_roundtrips_through_save_and_resume(
        tmp_path, cpu_amp):
    full = _amp_runner(tmp_path / 'full', max_iters=6)
    full.train()

    cut_dir = tmp_path / 'cut'
    _amp_runner(cut_dir, max_iters=3).train()  # 1 epoch, iter_2 mid-epoch
    saved = H.load_checkpoint(cut_dir / 'iter_2.pth')['optimizer']
    assert saved['loss_scaler']['scale'] == 512.0 * 2**2  # grew each step
    for name in ('iter_3.pth', 'last_checkpoint'):  # as if killed at 3
        (cut_dir / name).unlink()

    resumed = _amp_runner(cut_dir, max_iters=6, resume=True)
    resumed.load_or_resume()
    assert resumed.iter == 2
    assert resumed.optim_wrapper.loss_scaler.state_dict() == \
        saved['loss_scaler']
    resumed.train()
    assert resumed.optim_wrapper.loss_scaler.state_dict() == \
        full.optim_wrapper.loss_scaler.state_dict()
    assert torch.equal(resumed.model.fc.weight, full.model.fc.weight)
