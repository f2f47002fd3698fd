"""``ResumableEpochBasedTrainLoop``: MMEngine's epoch loop, made exact on
resume from a checkpoint written in the middle of an epoch.

MMEngine 0.10's :class:`~mmengine.runner.EpochBasedTrainLoop` restarts the
interrupted epoch from its first batch after a mid-epoch resume (it trains
the already-seen batches again and runs more iterations than planned), and
its random streams after a resume depend on what the process did before
(model building, soft-label pass, validation). This loop

* skips the batches of the current epoch that the checkpoint has already
  trained on, by sampler indices only (no image is decoded for them), so
  the rest of the epoch sees exactly the batches of an uninterrupted run;
* reseeds ``random``, ``numpy`` and ``torch`` (CPU and CUDA) before each
  batch from ``(seed, iteration)``, so every iteration draws the same random
  numbers (augmentations in the main process, caption templates, dropout)
  whether or not the run was interrupted.

With ``num_workers > 0`` the augmentations run in worker processes whose
random state depends on the batches they served before; after a mid-epoch
resume those draws differ from an uninterrupted run (the data order does
not). Bitwise-identical resume therefore needs ``num_workers=0``.

A run killed during the validation of epoch N resumes from the checkpoint
of epoch N, written before that validation; MMEngine would go on with epoch
N + 1 and that validation (its log row, its best checkpoint) would be lost.
This loop records each finished validation in ``<work_dir>/last_validation``
and runs a pending one first on resume.
"""
import logging
import os
import os.path as osp
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from drm_mm.registry import LOOPS

# DataLoader settings carried over to the loader of a resumed epoch.
_LOADER_ATTRS = ('num_workers', 'collate_fn', 'pin_memory', 'timeout',
                 'worker_init_fn', 'multiprocessing_context', 'generator',
                 'pin_memory_device', 'in_order')


def iteration_seed(seed: int, iteration: int) -> int:
    """A 32-bit seed for ``iteration`` of a run seeded with ``seed``."""
    sequence = np.random.SeedSequence([int(seed) % 2**32, int(iteration)])
    return int(sequence.generate_state(1)[0])


def reseed_all(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """Epoch-based training that resumes mid-epoch exactly (see module doc).

    ``DRMRunner`` uses it for every ``train_cfg = dict(by_epoch=True, ...)``;
    it can also be named explicitly:
    ``train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=20)``.

    Args:
        runner, dataloader, max_epochs, val_begin, val_interval,
            dynamic_intervals: as :class:`EpochBasedTrainLoop`.
        reseed_every_iter: reseed the global random generators before each
            batch from ``(runner.seed, iteration)``; False keeps MMEngine's
            single seeding at start-up (resume is then exact in data order
            but not in random draws).
    """

    def __init__(self,
                 runner: Any,
                 dataloader: Union[DataLoader, Dict],
                 max_epochs: int,
                 val_begin: int = 1,
                 val_interval: int = 1,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None,
                 reseed_every_iter: bool = True) -> None:
        if isinstance(max_epochs, bool) or not isinstance(
                max_epochs, int) or max_epochs < 1:
            raise ValueError(f'train_cfg.max_epochs must be a positive '
                             f'integer, got {max_epochs!r}.')
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        self.reseed_every_iter = bool(reseed_every_iter)
        # where the loop stands while hooks run (see resume_position)
        self._in_iter = False
        self._in_epoch_end = False

    def resume_position(self) -> Tuple[int, int]:
        """``(epoch, iter)`` a checkpoint written now must store so that a
        resume continues exactly here: inside ``after_train_iter`` the
        iteration counts as done (``(epoch, iter + 1)``), inside
        ``after_train_epoch`` the epoch does (``(epoch + 1, iter)``),
        elsewhere (validation, between epochs) ``(epoch, iter)``.

        These are the values MMEngine's ``CheckpointHook`` passes as
        ``meta``; :class:`ResumePositionHook` writes them into every
        checkpoint because ``FlexibleRunner.save_checkpoint`` (MMEngine
        0.10.7) overwrites them from ``by_epoch`` alone, which after a
        validation (``save_best``) stores the next epoch.
        """
        if self._in_iter:
            return self._epoch, self._iter + 1
        if self._in_epoch_end:
            return self._epoch + 1, self._iter
        return self._epoch, self._iter

    def run_iter(self, idx: int, data_batch: Any) -> None:
        """MMEngine's iteration, marking it for :meth:`resume_position`."""
        self._in_iter = True
        try:
            super().run_iter(idx, data_batch)
        finally:
            self._in_iter = False

    def batches_done_in_epoch(self) -> int:
        """Batches of the current epoch already trained (0 unless resumed
        from a checkpoint written in the middle of the epoch)."""
        per_epoch = len(self.dataloader)
        done = self._iter - self._epoch * per_epoch
        if 0 <= done <= per_epoch:
            return done
        print_log(
            f'Resumed at iteration {self._iter} of epoch {self._epoch + 1}, '
            f'which does not fit {per_epoch} batches per epoch (did the '
            'dataset or batch size change since the checkpoint?); the epoch '
            'restarts from its first batch.',
            logger='current', level=logging.WARNING)
        return 0

    def _remaining_loader(self, skip: int) -> Optional[DataLoader]:
        """A loader over the batches of this epoch after the first ``skip``,
        built from the sampler's indices; None when the loader has no
        batch sampler to slice."""
        loader = self.dataloader
        if getattr(loader, 'batch_sampler', None) is None:
            return None
        batches: Sequence[List[int]] = list(loader.batch_sampler)[skip:]
        kwargs = {a: getattr(loader, a) for a in _LOADER_ATTRS
                  if hasattr(loader, a)}
        if kwargs.get('num_workers', 0) > 0:
            kwargs['prefetch_factor'] = loader.prefetch_factor
        return DataLoader(loader.dataset, batch_sampler=batches,
                          persistent_workers=False, **kwargs)

    # -- validation pending after a resume ------------------------------
    @property
    def _validation_record(self) -> str:
        return osp.join(self.runner.work_dir, 'last_validation')

    def _val_due(self, epoch: int) -> bool:
        return (self.runner.val_loop is not None and epoch >= self.val_begin
                and (epoch % self.val_interval == 0
                     or epoch == self._max_epochs))

    def _validate(self) -> None:
        """Run validation and record that it finished at this iteration."""
        self.runner.val_loop.run()
        if is_main_process():
            tmp = f'{self._validation_record}.tmp'
            with open(tmp, 'w') as f:
                f.write(f'{self._epoch} {self._iter}\n')
            os.replace(tmp, self._validation_record)

    def _pending_validation(self) -> bool:
        """True when the run resumed at the end of an epoch whose due
        validation did not finish (same answer on every rank)."""
        pending = False
        self._decide_current_val_interval()
        if (self._iter > 0 and self._epoch > 0
                and self._iter == self._epoch * len(self.dataloader)
                and self._val_due(self._epoch)):
            try:
                with open(self._validation_record) as f:
                    done = f.read().split()
            except (OSError, UnicodeDecodeError):
                done = []
            pending = done != [str(self._epoch), str(self._iter)]
        flag = [pending]
        broadcast_object_list(flag)
        return bool(flag[0])

    def run(self) -> torch.nn.Module:
        """MMEngine's epoch loop, after running a validation left pending
        by an interrupted run."""
        self.runner.call_hook('before_train')
        if self._pending_validation():
            print_log(
                f'The validation of epoch {self._epoch} did not finish '
                'before the run stopped: running it now.', logger='current')
            self._validate()
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self._decide_current_val_interval()
            if self._val_due(self._epoch):
                self._validate()
        self.runner.call_hook('after_train')
        return self.runner.model

    def _reseed(self) -> None:
        if self.reseed_every_iter:
            reseed_all(iteration_seed(self.runner.seed, self._iter))

    def run_epoch(self) -> None:
        """Iterate over the (rest of the) epoch."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = self.batches_done_in_epoch()
        loader = self.dataloader
        if done:
            remaining = self._remaining_loader(done)
            print_log(
                f'Resuming epoch {self._epoch + 1} after its first {done} '
                f'batches (iteration {self._iter}); they are skipped.',
                logger='current')
            if remaining is not None:
                loader = remaining
        batches = iter(loader)
        if done and loader is self.dataloader:
            for _ in range(done):  # no batch sampler: load and discard
                next(batches)
        idx = done
        while True:
            self._reseed()
            try:
                data_batch = next(batches)
            except StopIteration:
                break
            self.run_iter(idx, data_batch)
            idx += 1
        self._in_epoch_end = True
        try:
            self.runner.call_hook('after_train_epoch')
        finally:
            self._in_epoch_end = False
        self._epoch += 1


def resolve_train_loop(loop: Any) -> Any:
    """The ``train_cfg`` to build: one that names no loop type but
    ``by_epoch=True`` becomes this loop (with a log line); for this loop a
    ``by_epoch`` merged in from an MMPretrain-style schedule is checked and
    dropped (MMEngine refuses both keys). Anything else is unchanged."""
    if not isinstance(loop, dict):
        return loop
    loop = dict(loop)
    if 'type' not in loop and loop.get('by_epoch', False):
        loop['type'] = ResumableEpochBasedTrainLoop
        print_log('train_cfg names no loop type: by_epoch=True runs '
                  'drm_mm.ResumableEpochBasedTrainLoop (exact mid-epoch '
                  'resume); set train_cfg.type to choose another.',
                  logger='current')
    if loop.get('type') in (ResumableEpochBasedTrainLoop,
                            'ResumableEpochBasedTrainLoop',
                            'drm_mm.ResumableEpochBasedTrainLoop') \
            and 'by_epoch' in loop and not loop.pop('by_epoch'):
        raise ValueError(
            "train_cfg.by_epoch=False with drm_mm.ResumableEpochBasedTrain"
            "Loop: for an iteration-based schedule write train_cfg = dict("
            "_delete_=True, type='IterBasedTrainLoop', max_iters=N).")
    return loop
