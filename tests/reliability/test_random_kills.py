"""Random SIGKILLs: one short DRM run (epoch checkpoints, ``save_best``,
``max_keep_ckpts=1``) is killed K times at random moments, each time
resumed with ``--resume auto``, and ends bitwise equal to the
uninterrupted run: final weights, every train and val row, the best
checkpoint.

K is ``$DRM_RANDOM_KILLS`` (default 2), the draws come from
``$DRM_RANDOM_KILLS_SEED`` (default 0): e.g.
``DRM_RANDOM_KILLS=20 DRM_RANDOM_KILLS_SEED=7 pytest -m slow
tests/reliability/test_random_kills.py``.
"""
import os
import random
import signal
import time

import pytest

import _reliability_helpers as H  # loaded by this folder's conftest.py

KILLS = int(os.environ.get('DRM_RANDOM_KILLS', '2'))
SEED = int(os.environ.get('DRM_RANDOM_KILLS_SEED', '0'))
#: Printed once the hooks are set up (soft-label pass, resume done next).
READY = 'Checkpoints will be saved to'

BODY = '''
randomness = dict(seed=0, deterministic=True)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=1,
                    save_best='accuracy/top1', rule='greater'))
custom_hooks = [dict(type='SoftLabelCacheHook', batch_size=32)]
'''


def _run_until_ready(config, work_dir, cwd, args=()):
    """Start a run; return (process, seconds from start to READY or exit,
    length of the output before this run)."""
    out = work_dir.parent / f'{work_dir.name}.out'
    before = out.stat().st_size if out.exists() else 0
    start = time.monotonic()
    proc = H.start_train(config, work_dir, *args, cwd=cwd)
    while proc.poll() is None:
        if READY in out.read_text(errors='replace')[before:]:
            break
        time.sleep(0.05)
    return proc, time.monotonic() - start, before


@pytest.mark.slow  # 2 + K short training subprocesses (~2 min on 2 cores)
def test_random_sigkills_then_resume_match_uninterrupted_run(
        tmp_path, fake_iwildcam_root):
    classes = H.tiny_class_setup(tmp_path)
    config = H.write_config(tmp_path / 'drm_kills.py', fake_iwildcam_root,
                            BODY, classes=classes)
    # own folders: each run computes its soft-label cache (a kill point)
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    full_dir, cut_dir = tmp_path / 'a' / 'full', tmp_path / 'b' / 'cut'

    proc, _, _ = _run_until_ready(config, full_dir, tmp_path / 'a')
    ready = time.monotonic()
    code, out = H.finish(proc, full_dir)
    assert code == 0, H.tail(out)
    span = time.monotonic() - ready  # setup + training + validation

    rng = random.Random(SEED)
    kills = []
    for _ in range(KILLS):
        proc, _, before = _run_until_ready(config, cut_dir, tmp_path / 'b',
                                           ('--resume', ))
        delay = rng.uniform(0, span)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        code, out = H.finish(proc, cut_dir)
        kills.append((round(delay, 2), code))
        assert code in (0, -signal.SIGKILL), H.tail(out[before:])
    code, out = H.run_train(config, cut_dir, '--resume')
    assert code == 0, H.tail(out)

    # every train and val row, killed runs and resumptions together
    full_rows, cut_rows = H.scalar_rows(full_dir), H.scalar_rows(cut_dir)
    assert sorted(full_rows) == sorted(
        [('train', i) for i in range(1, 11)] + [('val', 1), ('val', 2)])
    assert cut_rows == full_rows, kills
    # the same files (one epoch checkpoint, the true best), bitwise
    names = sorted(p.name for p in full_dir.glob('*.pth'))
    assert sorted(p.name for p in cut_dir.glob('*.pth')) == names, kills
    assert len(names) == 2 and names[1] == 'epoch_2.pth', names
    assert not list(cut_dir.glob('*.tmp')), kills
    for name in names:
        a = H.load_checkpoint(full_dir / name)
        b = H.load_checkpoint(cut_dir / name)
        assert H.tensors_equal(a['state_dict'], b['state_dict']) == [], (
            name, kills)
        assert a['meta']['iter'] == b['meta']['iter'], (name, kills)
    a = H.load_checkpoint(full_dir / 'epoch_2.pth')['optimizer']['state']
    b = H.load_checkpoint(cut_dir / 'epoch_2.pth')['optimizer']['state']
    for idx in a:
        assert H.tensors_equal(a[idx], b[idx]) == [], (idx, kills)
