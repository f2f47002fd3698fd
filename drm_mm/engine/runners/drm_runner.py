"""``DRMRunner``: MMEngine's Runner with safe checkpoint loading and
distributed training on CPU-only machines."""
from typing import Dict, Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.runner import Runner
from torch import nn

from drm_mm.registry import RUNNERS
from drm_mm.utils.safe_checkpoint import mmengine_checkpoint_globals


@RUNNERS.register_module()
class DRMRunner(Runner):
    """Runner used by every drm_mm config (``runner_type='DRMRunner'``).

    Differences from :class:`mmengine.runner.Runner`, all at the level where
    MMEngine 0.10 falls short:

    * checkpoints (``resume`` and ``load_from``) load with
      ``weights_only=True`` plus an allowlist of exactly the types MMEngine
      writes (:mod:`drm_mm.utils.safe_checkpoint`); a pickle that would run
      code is refused with a clear error;
    * with a launcher but no GPU, the process group uses gloo and DDP wraps
      the model with ``device_ids=None`` (MMEngine would call
      ``torch.cuda.set_device``), so ``dist_train.sh`` runs on CPU.
    """

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

    def load_or_resume(self) -> None:
        source = self._load_from or f'the latest checkpoint in {self.work_dir}'
        with mmengine_checkpoint_globals(repr(source)):
            super().load_or_resume()
