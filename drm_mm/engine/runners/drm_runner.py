"""``DRMRunner``: MMEngine's Runner with safe checkpoint loading, atomic
checkpoint writes, resume that skips a corrupt latest checkpoint, and
distributed training on CPU-only machines."""
import glob
import os
import os.path as osp
from typing import Dict, List, Optional, Union

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed, is_main_process
from mmengine.runner import BaseLoop, Runner
from torch import nn

from drm_mm.utils.checkpoint_utils import CheckpointMismatchError
from drm_mm.registry import RUNNERS
from drm_mm.utils.checkpoint_integrity import checkpoint_problem
from drm_mm.utils.safe_checkpoint import mmengine_checkpoint_globals

__all__ = ['DRMRunner', 'checkpoint_problem',
           'register_class_consistency_hook']


def register_class_consistency_hook(runner) -> None:
    """Add :class:`ClassConsistencyHook` to ``runner`` unless its config
    already lists one (called by :class:`DRMRunner` and
    :class:`DRMFlexibleRunner` after their hooks are registered)."""
    from drm_mm.engine.hooks import ClassConsistencyHook
    if not any(isinstance(h, ClassConsistencyHook) for h in runner.hooks):
        runner.register_hook(ClassConsistencyHook())


@RUNNERS.register_module()
class DRMRunner(Runner):
    """Runner used by every drm_mm config (``runner_type='drm_mm.DRMRunner'``).

    Differences from :class:`mmengine.runner.Runner`, each where MMEngine
    0.10 falls short:

    * checkpoints (``resume`` and ``load_from``) load with
      ``weights_only=True`` plus an allowlist of exactly the types MMEngine
      writes (:mod:`drm_mm.utils.safe_checkpoint`); a pickle that would run
      code is refused with a clear error;
    * checkpoints are written to a temporary file and renamed, so a crash
      mid-write never leaves a truncated ``.pth`` (nor, after an error
      such as a full disk, a ``.tmp`` file); ``AtomicCheckpointHook``
      replaces ``CheckpointHook`` and removes old checkpoints only after
      the new one is written; ``--resume auto`` checks
      the latest checkpoint and falls back to the previous good one, saying
      so in the log (the zip CRCs of the candidate are checked first);
    * every dataset's ``metainfo['classes']`` must match
      ``model.classnames`` (:class:`ClassConsistencyHook`, always added);
    * with a launcher but no GPU, the process group uses gloo and DDP wraps
      the model with ``device_ids=None`` (MMEngine would call
      ``torch.cuda.set_device``), so ``dist_train.sh`` runs on CPU;
    * checkpoints load strictly: one of another architecture (``load_from``,
      ``--resume``, the checkpoint of ``tools/test.py``) raises
      :class:`CheckpointMismatchError` naming the file and the first
      mismatching keys (MMEngine only logs a warning and goes on with
      the weights that did not load left at their initial values);
    * drm_mm's configs name
      :class:`~drm_mm.engine.loops.ResumableEpochBasedTrainLoop` in
      ``train_cfg`` (``_base_/default_runtime.py``): it resumes a
      checkpoint written mid-epoch at the next batch of the same epoch
      with the same random draws (MMEngine restarts the epoch). A config
      that names no loop but ``by_epoch=True`` gets it too, with a log line
      saying so.
    """

    def build_train_loop(self, loop: Union[BaseLoop, Dict]) -> BaseLoop:
        from drm_mm.engine.loops.resumable_epoch_based_train_loop import \
            resolve_train_loop
        return super().build_train_loop(resolve_train_loop(loop))

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

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        """Also adds :class:`ClassConsistencyHook` (model and dataset
        classes agree) unless the config lists it."""
        super().register_hooks(default_hooks, custom_hooks)
        register_class_consistency_hook(self)

    def setup_env(self, env_cfg: Dict) -> None:
        if (self.distributed and not is_distributed()
                and not torch.cuda.is_available()):
            timeout = env_cfg.get('dist_cfg', {}).get('timeout')
            kwargs = {} if timeout is None else dict(timeout=timeout)
            torch_dist.init_process_group(backend='gloo', **kwargs)
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[Dict],
                   model: nn.Module) -> nn.Module:
        if self.distributed and not torch.cuda.is_available():
            cfg = dict(model_wrapper_cfg or {})
            cfg.setdefault('type', 'MMDistributedDataParallel')
            cfg.setdefault('device_ids', None)
            cfg.setdefault('broadcast_buffers', False)
            cfg.setdefault('find_unused_parameters',
                           self.cfg.get('find_unused_parameters', False))
            model_wrapper_cfg = cfg
        return super().wrap_model(model_wrapper_cfg, model)

    # -- checkpoints -------------------------------------------------------
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
            p for p in glob.glob(osp.join(self.work_dir, '*.pth'))
            if not osp.basename(p).startswith('best_')
        ]
        others.sort(key=osp.getmtime, reverse=True)
        for path in others:
            if all(not osp.samefile(path, f) for f in found
                   if osp.exists(f)):
                found.append(path)
        return found

    def _read_last_checkpoint(self, record: str) -> Optional[str]:
        """The path in ``last_checkpoint``; None (with a warning) when the
        file is not a readable UTF-8 path."""
        try:
            with open(record, encoding='utf-8') as f:
                latest = f.read().strip()
        except (UnicodeDecodeError, OSError) as err:
            self.logger.warning(
                f'{record} is unusable ({type(err).__name__}: {err}); '
                'looking for checkpoints in the work dir instead.')
            return None
        if '\x00' in latest or '\n' in latest:
            self.logger.warning(f'{record} is unusable (not one path); '
                                'looking for checkpoints in the work dir '
                                'instead.')
            return None
        return latest

    def _pick_resume_checkpoint(self) -> Optional[str]:
        candidates = self._resume_candidates()
        for path in candidates:
            problem = checkpoint_problem(path)
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
        if self._has_loaded:
            return None
        if self._resume and self._load_from is None:
            picked = self._pick_resume_checkpoint()
            if picked is not None:
                self.logger.info(f'Auto resume from {picked}.')
                self._load_from = picked
            else:  # MMEngine would read last_checkpoint again
                self.logger.info(f'No checkpoint in {self.work_dir} to '
                                 'resume from: training starts afresh.')
                self._resume = False
        source = self._load_from or f'the latest checkpoint in {self.work_dir}'
        with mmengine_checkpoint_globals(
                repr(source), self._load_from,
                extra=self.cfg.get('checkpoint_safe_globals') or ()):
            super().load_or_resume()

    def load_checkpoint(self, filename: str, map_location='cpu',
                        strict: bool = True, revise_keys=((r'^module.', ''),
                                                          )) -> dict:
        """MMEngine's ``load_checkpoint``, strict by default, with a clear
        error for a checkpoint that does not fit the model."""
        try:
            return super().load_checkpoint(filename, map_location, strict,
                                           list(revise_keys))
        except RuntimeError as err:
            if 'do not match exactly' not in str(err):
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
        """Write to ``<filename>.tmp`` and rename: a crash mid-write leaves
        the previous checkpoints intact and no truncated ``.pth``."""
        final = osp.join(out_dir, filename)
        if '://' in out_dir:  # remote backends: no rename semantics
            return super().save_checkpoint(out_dir, filename, *args,
                                           **kwargs)
        tmp_name = f'{filename}.tmp'
        try:
            super().save_checkpoint(out_dir, tmp_name, *args, **kwargs)
        except BaseException:  # e.g. disk full: leave no partial file
            if is_main_process() and osp.exists(osp.join(out_dir, tmp_name)):
                os.remove(osp.join(out_dir, tmp_name))
            raise
        if is_main_process():
            os.replace(osp.join(out_dir, tmp_name), final)
