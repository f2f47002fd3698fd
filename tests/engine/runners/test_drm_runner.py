"""DRMRunner: resume with MMEngine's own checkpoints under torch's
weights_only default, refusal of crafted pickles, CPU wrapping."""
import itertools
import os

import _tiny_runner as T  # loaded by this folder's conftest.py
import pytest
import torch

from drm_mm.engine.runners import DRMRunner
from drm_mm.utils import UnsafeCheckpointError


_RUN_IDS = itertools.count()


def _runner(work_dir, max_iters, resume=False, load_from=None):
    torch.manual_seed(0)
    return DRMRunner(
        model=T.Linear(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=T.Points(), batch_size=4,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
        default_scope='drm_mm',
        experiment_name=f'drm_runner_test_{next(_RUN_IDS)}')


def test_resume_continues_at_next_iteration(tmp_path):
    first = _runner(tmp_path, max_iters=4)
    first.train()
    saved = torch.load(tmp_path / 'iter_4.pth', weights_only=False)
    assert (tmp_path / 'last_checkpoint').exists()

    second = _runner(tmp_path, max_iters=6, resume=True)
    second.load_or_resume()  # what train() does first
    assert second.iter == 4
    state = second.optim_wrapper.optimizer.state_dict()['state']
    for idx, tensors in saved['optimizer']['state'].items():
        for key, value in tensors.items():
            assert torch.equal(torch.as_tensor(state[idx][key]),
                               torch.as_tensor(value)), key
    second.train()
    assert second.iter == 6 and (tmp_path / 'iter_6.pth').exists()


def test_load_from_refuses_crafted_pickle(tmp_path):
    marker = tmp_path / 'pwned'

    class Payload:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'fc.weight': Payload()}}, evil)
    runner = _runner(tmp_path / 'w', max_iters=1, load_from=str(evil))
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        runner.load_or_resume()
    assert not marker.exists()


def test_no_gpu_distributed_wrapper_defaults(tmp_path, monkeypatch):
    runner = _runner(tmp_path, max_iters=1)
    monkeypatch.setattr(DRMRunner, 'distributed', property(lambda s: True))
    captured = {}

    def fake_wrap(self, cfg, model):
        captured.update(cfg)
        return model

    monkeypatch.setattr('mmengine.runner.Runner.wrap_model', fake_wrap)
    runner.wrap_model(None, runner.model)
    assert captured['device_ids'] is None
    assert captured['type'] == 'MMDistributedDataParallel'


def test_checkpoints_written_atomically(tmp_path, monkeypatch):
    _runner(tmp_path, max_iters=2).train()
    assert (tmp_path / 'iter_2.pth').exists()
    assert not list(tmp_path.glob('*.tmp'))
    good = (tmp_path / 'iter_2.pth').read_bytes()

    import mmengine.runner.runner as runner_module
    real_save = runner_module.save_checkpoint

    def crash_mid_write(checkpoint, filepath, **kwargs):
        with open(filepath, 'wb') as f:
            f.write(b'PK\x03\x04 partial')
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(runner_module, 'save_checkpoint', crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        _runner(tmp_path, max_iters=4, resume=True).train()
    monkeypatch.setattr(runner_module, 'save_checkpoint', real_save)
    assert not (tmp_path / 'iter_4.pth').exists()
    assert (tmp_path / 'iter_2.pth').read_bytes() == good
    resumed = _runner(tmp_path, max_iters=4, resume=True)
    resumed.load_or_resume()
    assert resumed.iter == 2


def test_resume_skips_truncated_latest(tmp_path, caplog):
    _runner(tmp_path, max_iters=4).train()
    latest = tmp_path / 'iter_4.pth'
    latest.write_bytes(latest.read_bytes()[:1000])
    resumed = _runner(tmp_path, max_iters=6, resume=True)
    resumed.load_or_resume()
    assert resumed.iter == 2
    log = (tmp_path / resumed.timestamp / f'{resumed.timestamp}.log'
           ).read_text()
    assert 'iter_4.pth is unusable' in log
    assert 'previous good checkpoint' in log


def test_resume_with_only_corrupt_checkpoints_fails_clearly(tmp_path):
    _runner(tmp_path, max_iters=2).train()
    (tmp_path / 'iter_2.pth').write_bytes(b'garbage')
    resumed = _runner(tmp_path, max_iters=4, resume=True)
    with pytest.raises(RuntimeError, match='no usable checkpoint'):
        resumed.load_or_resume()
