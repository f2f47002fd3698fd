"""A toy run (``_helpers.toy_runner``) in a child process, SIGKILLed at one
point: ``python _toy_child.py WORK_DIR KIND ARG CHECKPOINT_JSON``.

KIND ``write``: killed halfway through the ARG-th checkpoint write whose
file name contains the prefix before ':' in ARG (``epoch_:2``);
``before_removal``: killed before the ARG-th removal of an outdated
checkpoint (the new one is complete);
``val``: killed in the validation of epoch ARG; ``none``: not killed. With
``score`` in the checkpoint dict every validation is a new best.
"""
import json
import os
import signal
import sys
from pathlib import Path

import mmengine.runner.runner as runner_module
from mmengine.hooks import Hook

import _helpers as H


def die_on_write(pattern: str, nth: int):
    """SIGKILL halfway through the nth write whose file name contains
    ``pattern``."""
    real = runner_module.save_checkpoint
    seen = []

    def save(checkpoint, filepath, **kwargs):
        if pattern in os.path.basename(filepath):
            seen.append(filepath)
            if len(seen) == nth:
                with open(filepath, 'wb') as f:
                    f.write(b'PK\x03\x04 half a checkpoint')
                os.kill(os.getpid(), signal.SIGKILL)
        return real(checkpoint, filepath, **kwargs)

    return save


def die_before_removal(nth: int) -> None:
    """SIGKILL when AtomicCheckpointHook is about to remove an outdated
    checkpoint for the nth time (the new one is complete)."""
    from drm_mm.engine.hooks import AtomicCheckpointHook
    real = AtomicCheckpointHook._remove
    calls = []

    def remove(self, runner, path):
        calls.append(path)
        if len(calls) == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, runner, path)

    AtomicCheckpointHook._remove = remove


class KillInValidation(Hook):

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        if runner.epoch == self.epoch and batch_idx == 1:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    work_dir, kind, arg, checkpoint = sys.argv[1:5]
    checkpoint = json.loads(checkpoint)
    hooks = []
    if kind == 'write':
        pattern, nth = arg.split(':')
        runner_module.save_checkpoint = die_on_write(pattern, int(nth))
    elif kind == 'before_removal':
        die_before_removal(int(arg))
    elif kind == 'val':
        hooks.append(KillInValidation(int(arg)))
    if checkpoint.get('save_best') == 'score':
        hooks.append(H.IncreasingScore())
    H.toy_runner(Path(work_dir), checkpoint=checkpoint,
                 custom_hooks=hooks).train()


if __name__ == '__main__':
    main()
