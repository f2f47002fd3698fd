"""Corruption that is not truncation: flipped bytes in a tensor or in
``data.pkl`` are found by the zip CRCs and ``--resume auto`` falls back to
the previous good checkpoint naming the corrupt file; a non-UTF-8
``last_checkpoint`` is unusable, not a crash."""
import pytest

import _reliability_helpers as H  # loaded by this folder's conftest.py
from drm_mm.utils.checkpoint_integrity import (CorruptCheckpointError,
                                               check_checkpoint,
                                               checkpoint_problem)


@pytest.fixture(scope='module')
def two_epochs(tmp_path_factory):
    """A toy run with epoch_1.pth and epoch_2.pth (bytes kept)."""
    work = tmp_path_factory.mktemp('corruption') / 'run'
    H.toy_runner(work, max_epochs=2).train()
    return {name: (work / name).read_bytes()
            for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint')}


def _work_dir(tmp_path, files):
    work = tmp_path / 'run'
    work.mkdir()
    for name, data in files.items():
        (work / name).write_bytes(data)
    # last_checkpoint holds the path of the run the bytes came from
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    return work


@pytest.mark.parametrize('member,expected', [
    ('data/0', 'member archive/data/0 is corrupt (CRC-32 mismatch)'),
    ('data.pkl', 'member archive/data.pkl is corrupt (CRC-32 mismatch)')])
def test_flipped_bytes_fall_back_to_previous_checkpoint(
        tmp_path, two_epochs, member, expected):
    work = _work_dir(tmp_path, two_epochs)
    latest = work / 'epoch_2.pth'
    H.flip_byte(latest, member, at=3)
    assert checkpoint_problem(str(latest)) == expected
    resumed = H.toy_runner(work, max_epochs=3, resume=True)
    resumed.load_or_resume()
    assert resumed.epoch == 1
    log = (work / resumed.timestamp / f'{resumed.timestamp}.log'
           ).read_text()
    assert (f'Checkpoint {latest} is unusable: '
            f'{expected}. Skipping it.') in log
    assert (f'Resuming from the previous good checkpoint '
            f'{work / "epoch_1.pth"} instead.') in log


def test_check_checkpoint_names_the_file(tmp_path, two_epochs):
    path = tmp_path / 'epoch_2.pth'
    path.write_bytes(two_epochs['epoch_2.pth'])
    check_checkpoint(str(path))  # intact: no error
    H.flip_byte(path, 'data/0')
    with pytest.raises(CorruptCheckpointError) as err:
        check_checkpoint(str(path))
    assert str(err.value) == (
        f"checkpoint {str(path)!r} is damaged: member archive/data/0 is "
        'corrupt (CRC-32 mismatch). Use another checkpoint or write this one '
        'again.')


def test_non_utf8_last_checkpoint_is_unusable_not_a_crash(
        tmp_path, two_epochs):
    work = _work_dir(tmp_path, two_epochs)
    (work / 'last_checkpoint').write_bytes(b'\xff\xfe\x00garbage')
    (work / 'epoch_2.pth').unlink()
    resumed = H.toy_runner(work, max_epochs=3, resume=True)
    resumed.load_or_resume()
    assert resumed.epoch == 1
    log = (work / resumed.timestamp / f'{resumed.timestamp}.log'
           ).read_text()
    assert f'{work / "last_checkpoint"} is unusable (UnicodeDecodeError' in log


def test_non_utf8_last_checkpoint_alone_starts_afresh(tmp_path):
    work = tmp_path / 'run'
    work.mkdir()
    (work / 'last_checkpoint').write_bytes(b'\xff\xfe')
    resumed = H.toy_runner(work, max_epochs=1, resume=True)
    resumed.load_or_resume()
    assert resumed.epoch == 0
