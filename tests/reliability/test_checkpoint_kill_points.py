"""Kill points around checkpoints and validation, on a small toy run
(``_toy_child.py`` SIGKILLs itself at the exact point): a kill while a
checkpoint is written with ``max_keep_ckpts=1`` (epoch and best
checkpoints), a full disk, a kill during validation, and the
``*.pth.tmp`` a kill leaves."""
import errno
import signal

import mmengine.runner.runner as runner_module
import pytest

import _reliability_helpers as H  # loaded by this folder's conftest.py
from drm_mm.utils.checkpoint_integrity import checkpoint_problem

KEEP_1 = dict(max_keep_ckpts=1)
BEST = dict(max_keep_ckpts=1, save_best='acc', rule='greater')


def _pth(work_dir):
    return sorted(p.name for p in work_dir.glob('*.pth'))


def _log(runner, work_dir):
    return (work_dir / runner.timestamp / f'{runner.timestamp}.log'
            ).read_text()


def test_kill_while_writing_epoch_checkpoint_keeps_the_previous_one(
        tmp_path):
    work = tmp_path / 'run'
    assert H.toy_child(work, 'write', 'epoch_:2', KEEP_1) == -signal.SIGKILL
    assert _pth(work) == ['epoch_1.pth']  # MMEngine had deleted it first
    assert checkpoint_problem(str(work / 'epoch_1.pth')) is None
    assert sorted(p.name for p in work.glob('*.tmp')) == ['epoch_2.pth.tmp']

    resumed = H.toy_runner(work, resume=True, checkpoint=KEEP_1)
    resumed.train()
    assert resumed.epoch == 3
    assert _pth(work) == ['epoch_3.pth']
    assert list(work.glob('*.tmp')) == []  # the leftover was removed
    assert (f'Removed {work / "epoch_2.pth.tmp"}, left by an interrupted '
            'checkpoint write.') in _log(resumed, work)


def test_kill_while_writing_best_checkpoint_keeps_the_previous_best(
        tmp_path):
    work = tmp_path / 'run'
    best = dict(max_keep_ckpts=1, save_best='score', rule='greater')
    assert H.toy_child(work, 'write', 'best_:2', best) == -signal.SIGKILL
    # epoch 2's best was being written: epoch 1's best must still be there
    assert _pth(work) == ['best_score_epoch_1.pth', 'epoch_2.pth']
    assert checkpoint_problem(str(work / 'best_score_epoch_1.pth')) is None


def test_kill_after_write_before_removal_cleans_up_on_resume(tmp_path):
    work = tmp_path / 'run'
    assert H.toy_child(work, 'before_removal', '1',
                       KEEP_1) == -signal.SIGKILL
    assert _pth(work) == ['epoch_1.pth', 'epoch_2.pth']
    resumed = H.toy_runner(work, resume=True, checkpoint=KEEP_1)
    resumed.load_or_resume()
    resumed.train()
    assert _pth(work) == ['epoch_3.pth']  # epoch_1.pth went on resume


def test_kill_before_old_best_is_removed_cleans_up_on_resume(tmp_path):
    work = tmp_path / 'run'
    best = dict(max_keep_ckpts=1, save_best='score', rule='greater')
    # 1st removal: epoch_1.pth; 2nd: best_score_epoch_1.pth, after
    # epoch_2.pth was saved again with the new best
    assert H.toy_child(work, 'before_removal', '2', best) == -signal.SIGKILL
    assert _pth(work) == ['best_score_epoch_1.pth', 'best_score_epoch_2.pth',
                          'epoch_2.pth']
    resumed = H.toy_runner(work, resume=True, checkpoint=best,
                           custom_hooks=[H.IncreasingScore()])
    resumed.train()
    assert ('Removed the outdated best checkpoint '
            f'{work / "best_score_epoch_1.pth"}.') in _log(resumed, work)
    assert _pth(work) == ['best_score_epoch_3.pth', 'epoch_3.pth']


def test_disk_full_during_write_leaves_no_tmp_and_the_old_checkpoint(
        tmp_path, monkeypatch):
    work = tmp_path / 'run'
    real = runner_module.save_checkpoint
    calls = []

    def full_disk(checkpoint, filepath, **kwargs):
        calls.append(filepath)
        if len(calls) == 2:
            with open(filepath, 'wb') as f:
                f.write(b'PK\x03\x04 partial')
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(checkpoint, filepath, **kwargs)

    monkeypatch.setattr(runner_module, 'save_checkpoint', full_disk)
    with pytest.raises(OSError, match='No space left on device'):
        H.toy_runner(work, checkpoint=KEEP_1).train()
    assert sorted(p.name for p in work.glob('*.pth*')) == ['epoch_1.pth']
    assert checkpoint_problem(str(work / 'epoch_1.pth')) is None


@pytest.mark.parametrize('epoch', [2, 3])  # 3: the last epoch
def test_kill_during_validation_runs_it_on_resume(tmp_path, epoch):
    full = tmp_path / 'full'
    H.toy_runner(full, checkpoint=BEST).train()
    cut = tmp_path / 'cut'
    assert H.toy_child(cut, 'val', str(epoch), BEST) == -signal.SIGKILL
    resumed = H.toy_runner(cut, resume=True, checkpoint=BEST)
    resumed.train()
    assert (f'The validation of epoch {epoch} did not finish before the run '
            'stopped: running it now.') in _log(resumed, cut)

    rows = H.scalar_rows(cut)
    assert sorted(k for k in rows if k[0] == 'val') == [
        ('val', 1), ('val', 2), ('val', 3)]
    assert rows == H.scalar_rows(full)
    assert _pth(cut) == _pth(full)
    for name in _pth(full):
        a, b = H.load_checkpoint(full / name), H.load_checkpoint(cut / name)
        assert H.tensors_equal(a['state_dict'], b['state_dict']) == [], name
        assert a['message_hub']['runtime_info']['best_score'] == \
            b['message_hub']['runtime_info']['best_score']


def test_finished_validation_is_not_run_again(tmp_path):
    work = tmp_path / 'run'
    H.toy_runner(work, max_epochs=2).train()
    assert (work / 'last_validation').read_text() == '2 8\n'
    resumed = H.toy_runner(work, max_epochs=2, resume=True)
    resumed.train()
    assert 'did not finish' not in _log(resumed, work)
    assert sorted(H.scalar_rows(work)) == [
        ('train', i) for i in range(1, 9)] + [('val', 1), ('val', 2)]
