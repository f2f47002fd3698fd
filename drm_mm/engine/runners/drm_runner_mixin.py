"""``DRMRunnerMixin``: what :class:`DRMRunner` and :class:`DRMFlexibleRunner`
add to MMEngine's runners, in one place.

Only public MMEngine APIs are used: the constructor's ``resume`` /
``load_from`` arguments are kept here and ``load_or_resume`` is written
in full from ``resume`` / ``load_checkpoint`` (MMEngine's reads private
attributes).
"""
import copy
import datetime
import fcntl
import glob
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

from mmengine.dist import barrier, broadcast_object_list, is_main_process
from mmengine.runner import BaseLoop

from drm_mm.utils.checkpoint_integrity import checkpoint_problem
from drm_mm.utils.checkpoint_utils import (CheckpointMismatchError,
                                           missing_storage_records)
from drm_mm.utils.safe_checkpoint import mmengine_checkpoint_globals

#: Largest ``last_checkpoint`` read (a path, never more).
MAX_RECORD_BYTES = 4096
#: Words of torch's / MMEngine's error for a state dict that does not fit.
_MISMATCH_WORDS = ('do not match exactly', 'Missing key', 'Unexpected key',
                   'size mismatch')
#: The lock file of a training run in its work dir.
LOCK_NAME = '.drm_train.lock'


def collective_timeout(dist_cfg: Optional[dict]) -> dict:
    """``init_process_group`` keyword for ``dist_cfg['timeout']`` (seconds,
    as MMEngine reads it): ``{'timeout': timedelta}`` or ``{}``."""
    seconds = (dist_cfg or {}).get('timeout')
    if seconds is None:
        return {}
    return dict(timeout=datetime.timedelta(seconds=float(seconds)))


class WorkDirBusyError(RuntimeError):
    """Another training run holds the work dir."""


def register_class_consistency_hook(runner: Any) -> None:
    """Add :class:`ClassConsistencyHook` and :class:`ResumePositionHook` to
    ``runner`` unless its config already lists them."""
    from drm_mm.engine.hooks import ClassConsistencyHook, ResumePositionHook
    for kind in (ClassConsistencyHook, ResumePositionHook):
        if not any(isinstance(h, kind) for h in runner.hooks):
            runner.register_hook(kind())


def checkpoint_defect(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from (damaged zip, a storage record
    missing from the zip), or None."""
    problem = checkpoint_problem(path)
    if problem is None:
        missing = missing_storage_records(path)
        if missing:
            problem = (f'{len(missing)} storage record(s) of data.pkl are '
                       f'missing from the zip (first: data/{missing[0]})')
    return problem


class DRMRunnerMixin:
    """Shared by :class:`DRMRunner` (on ``Runner``) and
    :class:`DRMFlexibleRunner` (on ``FlexibleRunner``); listed first in
    their bases.

    * ``--resume auto`` picks the newest intact checkpoint of the work dir
      (zip CRCs and storage records checked) and falls back to the
      previous good one, saying so; ``last_checkpoint`` is read only up to
      :data:`MAX_RECORD_BYTES` and must name a file inside the work dir;
    * checkpoints are written to ``<name>.tmp`` and renamed; a failed write
      leaves no ``.tmp``;
    * checkpoints load strictly: one of another architecture raises
      :class:`CheckpointMismatchError` naming the file and the keys;
    * ``${key}`` references of the dataloader configs are filled from the
      merged config (``data_root='${data_root}'``);
    * ``train_cfg=dict(by_epoch=True)`` builds
      :class:`ResumableEpochBasedTrainLoop`; :class:`ClassConsistencyHook`
      and :class:`ResumePositionHook` are always added;
    * training holds an exclusive lock on ``<work_dir>/.drm_train.lock``
      (``fcntl.flock`` by rank 0): a second run on the same work dir stops
      with :class:`WorkDirBusyError`; the kernel releases the lock when the
      holder exits or is killed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._drm_load_from = kwargs.get('load_from')
        self._drm_resume = kwargs.get('resume', False)
        self._drm_loaded = False
        self._work_dir_lock: Optional[int] = None
        super().__init__(*args, **kwargs)

    @classmethod
    def from_cfg(cls, cfg) -> Any:
        """Fills the ``${key}`` references of the dataloader configs (e.g.
        ``data_root='${data_root}'``) from the merged config first
        (:func:`drm_mm.datasets.resolve_config_refs`), so one ``data_root``
        moves every split."""
        from drm_mm.datasets.config_refs import resolve_config_refs
        return super().from_cfg(resolve_config_refs(copy.deepcopy(cfg)))

    def build_train_loop(self, loop: Union[BaseLoop, Dict]) -> BaseLoop:
        from drm_mm.engine.loops.resumable_epoch_based_train_loop import \
            resolve_train_loop
        return super().build_train_loop(resolve_train_loop(loop))

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        """Also adds :class:`ClassConsistencyHook` (model and dataset
        classes agree) and :class:`ResumePositionHook` unless the config
        lists them."""
        super().register_hooks(default_hooks, custom_hooks)
        register_class_consistency_hook(self)

    def register_default_hooks(self, hooks: Optional[Dict] = None) -> None:
        """MMEngine's defaults, with :class:`AtomicCheckpointHook` in place
        of ``CheckpointHook`` (same arguments; old checkpoints are removed
        only after the new one is written)."""
        from mmengine.hooks import CheckpointHook

        from drm_mm.engine.hooks import AtomicCheckpointHook
        hooks = dict(hooks or {})
        ckpt = hooks.get('checkpoint', dict(type='CheckpointHook',
                                             interval=1))
        if isinstance(ckpt, dict) and ckpt.get('type') in (
                'CheckpointHook', CheckpointHook):
            hooks['checkpoint'] = dict(ckpt, type=AtomicCheckpointHook)
        elif 'checkpoint' not in hooks:
            hooks['checkpoint'] = ckpt
        super().register_default_hooks(hooks)

    # -- one run per work dir ---------------------------------------------
    def lock_work_dir(self) -> None:
        """Take the work dir's training lock (rank 0; every rank raises
        :class:`WorkDirBusyError` if it is held)."""
        if self._work_dir_lock is not None:
            return
        problem = None
        if is_main_process() and '://' not in str(self.work_dir):
            path = osp.join(self.work_dir, LOCK_NAME)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                problem = (
                    f'work dir {self.work_dir} is in use by another training '
                    f'run (it holds {path}); wait for it to finish or pass '
                    'another --work-dir.')
            else:
                os.ftruncate(fd, 0)
                os.write(fd, f'{os.getpid()}\n'.encode())
                self._work_dir_lock = fd
        flag = [problem]
        broadcast_object_list(flag)
        if flag[0] is not None:
            raise WorkDirBusyError(flag[0])
        if self._work_dir_lock is None:
            self._work_dir_lock = -1  # other ranks: nothing to hold

    def unlock_work_dir(self) -> None:
        """Release the lock taken by :meth:`lock_work_dir`."""
        fd, self._work_dir_lock = self._work_dir_lock, None
        if fd is not None and fd >= 0:
            os.close(fd)  # closing the descriptor releases the flock

    def train(self) -> Any:
        self.lock_work_dir()
        try:
            return super().train()
        finally:
            self.unlock_work_dir()

    # -- which checkpoint to resume -----------------------------------------
    def _read_last_checkpoint(self, record: str) -> Optional[str]:
        """The checkpoint named in ``last_checkpoint`` (at most
        :data:`MAX_RECORD_BYTES` read); None, with a warning, when the file
        is not one UTF-8 path to a file inside the work dir."""
        def unusable(why: str) -> None:
            self.logger.warning(f'{record} is unusable ({why}); looking for '
                                'checkpoints in the work dir instead.')

        try:
            with open(record, 'rb') as f:
                raw = f.read(MAX_RECORD_BYTES + 1)
            latest = raw.decode('utf-8').strip()
        except (UnicodeDecodeError, OSError) as err:
            return unusable(f'{type(err).__name__}: {str(err)[:200]}')
        if len(raw) > MAX_RECORD_BYTES:
            return unusable(f'over {MAX_RECORD_BYTES} bytes, not a path')
        if '\x00' in latest or '\n' in latest or not latest:
            return unusable('not one path')
        work_dir = osp.realpath(self.work_dir)
        target = osp.realpath(osp.join(self.work_dir, latest))
        if osp.dirname(target) != work_dir:
            return unusable(f'{latest[:200]!r} is not a checkpoint of this '
                            f'work dir {self.work_dir}; pass --resume PATH '
                            'to resume from another run')
        return target

    def _resume_candidates(self) -> List[str]:
        """Checkpoints of this work dir, the recorded latest one first, then
        the others from newest to oldest (``best_*`` files excluded)."""
        found = []
        record = osp.join(self.work_dir, 'last_checkpoint')
        if osp.isfile(record):
            latest = self._read_last_checkpoint(record)
            if latest:
                found.append(latest)
        others = [
            p for p in glob.glob(osp.join(glob.escape(self.work_dir), '*.pth'))
            if not osp.basename(p).startswith('best_')
        ]
        others.sort(key=osp.getmtime, reverse=True)
        for path in others:
            if all(not osp.samefile(path, f) for f in found
                   if osp.exists(f)):
                found.append(path)
        return found

    def _pick_resume_checkpoint(self) -> Optional[str]:
        candidates = self._resume_candidates()
        for path in candidates:
            problem = checkpoint_defect(path)
            if problem is None:
                if path != candidates[0]:
                    self.logger.warning(
                        f'Resuming from the previous good checkpoint {path} '
                        'instead.')
                return path
            self.logger.warning(
                f'Checkpoint {path} is unusable: {problem}. Skipping it.')
        if candidates:
            raise RuntimeError(
                f'--resume auto: no usable checkpoint in {self.work_dir} '
                f'(tried {candidates}). Delete them to start afresh or pass '
                '--resume PATH.')
        return None

    def load_or_resume(self) -> None:
        """MMEngine's choice between ``resume`` and ``load_from``, with
        ``resume=True`` and no ``load_from`` resolved by
        :meth:`_pick_resume_checkpoint`."""
        if self._drm_loaded:
            return None
        resume, load_from = self._drm_resume, self._drm_load_from
        resume_from = None
        if isinstance(resume, str):
            resume_from = resume
        elif resume and load_from is None:
            resume_from = self._pick_resume_checkpoint()
            if resume_from is None:
                self.logger.info(f'No checkpoint in {self.work_dir} to '
                                 'resume from: training starts afresh.')
            else:
                self.logger.info(f'Auto resume from {resume_from}.')
        elif resume:
            resume_from = load_from
        if resume_from is not None:
            self.resume(resume_from)
        elif load_from is not None:
            self.load_checkpoint(load_from)
        self._drm_loaded = True

    def _safe_globals(self) -> Sequence:
        """Classes the config allows in checkpoints beyond MMEngine's own
        (``checkpoint_safe_globals``, see docs/safe_loading.md)."""
        return self.cfg.get('checkpoint_safe_globals') or ()

    def resume(self, filename: str, *args: Any, **kwargs: Any) -> None:
        with mmengine_checkpoint_globals(
                repr(filename), filename, extra=self._safe_globals()):
            return super().resume(filename, *args, **kwargs)

    # -- loading and writing --------------------------------------------------
    def load_checkpoint(self, filename: str, map_location='cpu',
                        strict: bool = True,
                        revise_keys=((r'^module.', ''), )) -> Any:
        """MMEngine's ``load_checkpoint``, safe and strict by default, with a
        one-line :class:`CheckpointMismatchError` for a checkpoint that does
        not fit the model."""
        try:
            with mmengine_checkpoint_globals(
                repr(filename), filename, extra=self._safe_globals()):
                return super().load_checkpoint(filename, map_location,
                                               strict, list(revise_keys))
        except RuntimeError as err:
            if not any(word in str(err) for word in _MISMATCH_WORDS):
                raise
            lines = [line.strip() for line in str(err).splitlines()
                     if line.strip() and 'do not match' not in line]
            detail = '; '.join(line[:200] for line in lines[:3])
            raise CheckpointMismatchError(
                f'checkpoint {filename!r} does not fit the model of this '
                f'config ({detail}). It was written for another architecture '
                f'(model.clip.model_name, head.linear, ...): load a '
                f'checkpoint of the same model config, or unset load_from / '
                f'the checkpoint argument.') from None

    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        **kwargs) -> None:
        """Write ``<filename>.tmp`` and rename it on rank 0: a crash
        mid-write leaves the previous checkpoints intact and no truncated
        ``.pth``; a failed write (e.g. a full disk) leaves no ``.tmp``.
        Every rank waits until the file is in place, so a rank that stops
        right after the save (a kill, an error) cannot take rank 0's write
        down with it."""
        if '://' in out_dir:  # remote backends: no rename semantics
            return super().save_checkpoint(out_dir, filename, *args,
                                           **kwargs)
        final = osp.join(out_dir, filename)
        tmp = f'{final}.tmp'
        try:
            super().save_checkpoint(out_dir, f'{filename}.tmp', *args,
                                    **kwargs)
        except BaseException:
            if is_main_process() and osp.isfile(tmp):
                os.remove(tmp)
            raise
        if is_main_process():
            os.replace(tmp, final)
        barrier()
