"""``DRMRunner``: MMEngine's Runner with safe checkpoint loading, atomic
checkpoint writes, resume that skips a corrupt latest checkpoint, and
distributed training on CPU-only machines."""
from typing import Dict, Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop, Runner
from torch import nn

from drm_mm.registry import RUNNERS
from drm_mm.utils.checkpoint_integrity import checkpoint_problem

from .drm_runner_mixin import (DRMRunnerMixin, collective_timeout,
                               register_class_consistency_hook)

__all__ = ['DRMRunner', 'checkpoint_problem',
           'register_class_consistency_hook']


@RUNNERS.register_module()
class DRMRunner(DRMRunnerMixin, Runner):
    """Runner used by every drm_mm config (``runner_type='drm_mm.DRMRunner'``).

    Differences from :class:`mmengine.runner.Runner`, each where MMEngine
    0.10 falls short (those shared with :class:`DRMFlexibleRunner` are
    :class:`DRMRunnerMixin`'s):

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
      so in the log (the zip CRCs and storage records of the candidate are
      checked first); a second training run on the same work dir is
      refused (a lock file, released when the holder exits or dies);
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

    def build_param_scheduler(self, scheduler):
        """MMEngine's, after checking that every scheduler fits the run
        (:func:`drm_mm.engine.schedule_fit.check_schedule_fits`)."""
        from mmengine.runner import BaseLoop

        from drm_mm.engine.schedule_fit import check_schedule_fits
        if isinstance(self._train_loop, BaseLoop):
            check_schedule_fits(scheduler, self.max_epochs, self.max_iters)
        return super().build_param_scheduler(scheduler)

    def load_or_resume(self) -> None:
        """The mixin's choice of checkpoint; evaluation with no checkpoint at
        all (``runner.val()`` / ``runner.test()`` of a zero-shot config)
        starts from the model's own pretrained weights, as training does
        (MMEngine calls ``init_weights`` in ``train()`` only)."""
        super().load_or_resume()
        training = isinstance(self._train_loop, BaseLoop)
        if training or self._drm_load_from is not None or self._drm_resume:
            return
        model = self.model.module if is_model_wrapper(
            self.model) else self.model
        if hasattr(model, 'init_weights') and not getattr(
                model, 'is_init', True):
            model.init_weights()

    def setup_env(self, env_cfg: Dict) -> None:
        if (self.distributed and not is_distributed()
                and not torch.cuda.is_available()):
            torch_dist.init_process_group(
                backend='gloo', **collective_timeout(env_cfg.get('dist_cfg')))
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
