"""What ``--resume auto`` may resume from, and who may train in a work
dir: ``last_checkpoint`` is read only up to a few KB and must name a file
of this work dir; a checkpoint whose zip lacks a storage record of its
pickle is skipped for the previous good one; a second training run on a
work dir is refused while the first holds it, and a SIGKILLed run leaves
no stale lock."""
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest

import _reliability_helpers as H  # loaded by this folder's conftest.py
from drm_mm.engine.runners import WorkDirBusyError
from drm_mm.engine.runners.drm_runner_mixin import (LOCK_NAME,
                                                     MAX_RECORD_BYTES)
from drm_mm.utils.checkpoint_utils import missing_storage_records


@pytest.fixture(scope='module')
def two_epochs(tmp_path_factory):
    """A toy run's epoch_1.pth and epoch_2.pth (bytes kept)."""
    work = tmp_path_factory.mktemp('sources') / 'run'
    H.toy_runner(work, max_epochs=2).train()
    return {name: (work / name).read_bytes()
            for name in ('epoch_1.pth', 'epoch_2.pth')}


def _work_dir(path, files):
    path.mkdir(parents=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    os.utime(path / 'epoch_1.pth', (1, 1))  # older than epoch_2.pth
    return path


def _resume(work):
    runner = H.toy_runner(work, resume=True)
    runner.load_or_resume()
    log = (work / runner.timestamp / f'{runner.timestamp}.log').read_text()
    return runner, log


def test_last_checkpoint_of_another_run_is_refused(tmp_path, two_epochs):
    other = _work_dir(tmp_path / 'other', two_epochs)
    work = _work_dir(tmp_path / 'work',
                     {'epoch_1.pth': two_epochs['epoch_1.pth']})
    (work / 'last_checkpoint').write_text(str(other / 'epoch_2.pth'))
    runner, log = _resume(work)
    assert runner.epoch == 1  # this run's own epoch_1.pth, not epoch 2
    assert f'Auto resume from {work / "epoch_1.pth"}.' in log
    assert (f"is not a checkpoint of this work dir {work}; pass --resume "
            'PATH to resume from another run') in log


def test_huge_last_checkpoint_is_read_only_a_few_kb(tmp_path, two_epochs):
    work = _work_dir(tmp_path / 'work', two_epochs)
    with open(work / 'last_checkpoint', 'wb') as f:  # 64 MiB of 'x'
        for _ in range(64):
            f.write(b'x' * (1 << 20))
    runner, log = _resume(work)
    assert runner.epoch == 2
    assert f'over {MAX_RECORD_BYTES} bytes, not a path' in log
    assert 'x' * 1000 not in log  # nothing of it echoed
    assert len(log) < 100_000


def _drop_member(path, suffix):
    """Rewrite the zip ``path`` without its member ending in ``suffix``
    (every other member, and so every CRC, intact)."""
    with zipfile.ZipFile(path) as src:
        members = [(i, src.read(i)) for i in src.infolist()]
    with zipfile.ZipFile(path, 'w') as dst:
        for info, data in members:
            if not info.filename.endswith(suffix):
                dst.writestr(info, data)


def test_missing_storage_record_falls_back_to_previous(tmp_path,
                                                       two_epochs):
    work = _work_dir(tmp_path / 'work', two_epochs)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    assert missing_storage_records(str(work / 'epoch_2.pth')) == []
    _drop_member(work / 'epoch_2.pth', '/data/0')
    assert missing_storage_records(str(work / 'epoch_2.pth')) == ['0']
    runner, log = _resume(work)
    assert runner.epoch == 1
    assert (f'Checkpoint {work / "epoch_2.pth"} is unusable: 1 storage '
            'record(s) of data.pkl are missing from the zip (first: '
            'data/0). Skipping it.') in log
    assert (f'Resuming from the previous good checkpoint '
            f'{work / "epoch_1.pth"} instead.') in log


def test_second_run_on_a_work_dir_is_refused(tmp_path):
    work = tmp_path / 'run'
    first = H.toy_runner(work, max_epochs=1)
    first.lock_work_dir()
    second = H.toy_runner(work, max_epochs=1)
    with pytest.raises(WorkDirBusyError) as err:
        second.train()
    assert str(err.value) == (
        f'work dir {work} is in use by another training run (it holds '
        f'{work / LOCK_NAME}); wait for it to finish or pass another '
        '--work-dir.')
    assert not list(work.glob('*.pth'))  # the second run wrote nothing
    first.unlock_work_dir()
    second.train()  # free again
    assert (work / 'epoch_1.pth').is_file()


HOLDER = '''
import sys, time
from drm_mm.engine.runners.drm_runner_mixin import DRMRunnerMixin
class Holder(DRMRunnerMixin):
    pass
holder = Holder.__new__(Holder)
holder.work_dir, holder._work_dir_lock = sys.argv[1], None
holder.lock_work_dir()
print('locked', flush=True)
time.sleep(600)
'''


def test_lock_of_a_killed_run_is_released(tmp_path):
    work = tmp_path / 'run'
    work.mkdir()
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, str(work)],
                            stdout=subprocess.PIPE, env=H.train_env())
    try:
        assert proc.stdout.readline().strip() == b'locked'
        with pytest.raises(WorkDirBusyError):
            H.toy_runner(work, max_epochs=1).train()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    start = time.monotonic()
    runner = H.toy_runner(work, max_epochs=1)
    runner.train()  # no stale lock
    assert runner.epoch == 1 and time.monotonic() - start < 120
