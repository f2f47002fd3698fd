"""``DRMFSDPStrategy``: MMEngine's FSDPStrategy with drm_mm's defaults
(consolidated checkpoints, one FSDP unit per CLIP block) and CPU/gloo
support, for ``FlexibleRunner`` / :class:`DRMFlexibleRunner`."""
import copy
import weakref
from typing import List, Optional, Union

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine._strategy import FSDPStrategy
from mmengine.device import get_device
from mmengine.dist import is_distributed
from torch.distributed.fsdp import (FullOptimStateDictConfig,
                                    FullyShardedDataParallel, StateDictType)

from drm_mm.registry import STRATEGIES

#: ``model_wrapper`` defaults (a config's ``model_wrapper`` keys win).
DEFAULT_WRAPPER = dict(type='MMFullyShardedDataParallel',
                       auto_wrap_policy='drm_mm.clip_block_wrap_policy',
                       use_orig_params=True)


@STRATEGIES.register_module()
class DRMFSDPStrategy(FSDPStrategy):
    """Fully sharded data parallel DRM training.

    Differences from :class:`mmengine._strategy.FSDPStrategy`:

    * ``state_dict_cfg='full'``, the only one accepted (``'local'``
      shards cannot be resumed, tested or interpolated here and are
      refused with a one-line error): every checkpoint holds the
      consolidated weights (gathered to rank 0, offloaded to CPU), keyed
      like the unwrapped model, so ``tools/test.py``, ``tools/wise_ft.py``
      and :class:`DRMRunner` read it as they read a DDP checkpoint;
    * ``model_wrapper`` defaults to one FSDP unit per transformer block of
      both towers (:func:`clip_block_wrap_policy`) with
      ``use_orig_params=True`` (frozen and trained weights may share a
      unit; ``DRMClassifier`` keeps calling its towers' methods);
    * without a GPU the process group is gloo and FSDP runs on CPU (MMEngine
      would call ``torch.cuda.set_device``), so 2-rank runs work on CPU;
    * padding-free text forward with one length bucket: FSDP gathers each
      block's weights collectively on every call, so all ranks must run the
      text tower equally often, and buckets planned from each rank's own
      prompt shard could differ in number (a hang). ``OpenCLIP``'s
      ``text_length_buckets`` is set to 1 when wrapping (logged);
    * scalar parameters (CLIP's ``logit_scale``), which FSDP refuses to
      flatten, stay whole on every rank (``ignored_states``) and their
      gradient is averaged over the ranks after each backward, as FSDP
      does for the sharded ones (FSDP does not move ignored parameters:
      they are moved to the device here);
    * resume loads the optimizer state (MMEngine 0.10.7 calls
      ``FSDP.optim_state_dict_to_load`` with torch 1.x's argument order,
      which fails on torch 2);
    * without a GPU the full optimizer state is gathered without
      ``offload_to_cpu``: on CPU tensors torch 2.14's FSDP then returns
      ``exp_avg`` holding the values of ``exp_avg_sq`` (found by resuming a
      CPU run; GPU runs keep the offload, not verified on a GPU).
    """

    def __init__(self, *, model_wrapper: Optional[dict] = None,
                 state_dict_cfg: Union[str, dict] = 'full', **kwargs):
        kind = (state_dict_cfg if isinstance(state_dict_cfg, str) else
                (state_dict_cfg or {}).get('state_dict_type', 'full'))
        if str(kind).lower().replace('_state_dict', '').replace(
                'statedicttype.', '') != 'full':
            raise ValueError(
                f'strategy.state_dict_cfg={state_dict_cfg!r}: drm_mm resumes, '
                "tests and interpolates only consolidated checkpoints; set "
                "strategy.state_dict_cfg='full'.")
        wrapper = dict(DEFAULT_WRAPPER, **(model_wrapper or {}))
        super().__init__(model_wrapper=wrapper,
                         state_dict_cfg=state_dict_cfg, **kwargs)
        if (self.state_dict_type == StateDictType.FULL_STATE_DICT
                and not torch.cuda.is_available()):
            self.optim_state_dict_config = FullOptimStateDictConfig(
                rank0_only=self.optim_state_dict_config.rank0_only,
                offload_to_cpu=False)

    def _setup_distributed(self, launcher: str = 'pytorch',
                           backend: str = 'nccl', **kwargs) -> None:
        if not is_distributed() and not torch.cuda.is_available():
            from drm_mm.engine.runners.drm_runner_mixin import \
                collective_timeout
            torch_dist.init_process_group(backend='gloo',
                                          **collective_timeout(kwargs))
            return
        super()._setup_distributed(launcher, backend, **kwargs)

    def load_optim_state_dict(self, state_dict: dict) -> None:
        state = FullyShardedDataParallel.optim_state_dict_to_load(
            self.model, self.optim_wrapper.optimizer, state_dict)
        self.optim_wrapper.load_state_dict(state)

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        for module in model.modules():
            if getattr(module, 'text_length_buckets', 1) > 1:
                module.text_length_buckets = 1
                self.logger.info(
                    'DRMFSDPStrategy: text_length_buckets set to 1 (every '
                    'rank must run the text tower equally often).')
        self.model_wrapper = copy.copy(self.model_wrapper)
        if not torch.cuda.is_available():
            self.model_wrapper.setdefault('device_id', torch.device('cpu'))
        scalars = replicate_scalar_parameters(model)
        if scalars:
            self.model_wrapper.setdefault('ignored_states', scalars)
            for param in scalars:  # FSDP does not move ignored parameters
                param.data = param.data.to(get_device())
        total = sum(p.numel() for p in model.parameters())
        wrapped = super()._wrap_model(model)
        units = sum(isinstance(m, FullyShardedDataParallel)
                    for m in wrapped.modules())
        local = sum(p.numel() for p in wrapped.parameters())
        self.logger.info(f'DRMFSDPStrategy: {units} FSDP units; this rank '
                         f'holds {local} of {total} parameter values.')
        return wrapped


def _average_grad(param: torch.Tensor) -> None:
    if param.grad is not None and torch_dist.is_initialized():
        torch_dist.all_reduce(param.grad)
        param.grad.div_(torch_dist.get_world_size())


#: Scalar parameters already given the averaging hook (a model wrapped
#: twice, e.g. train then test, must not average twice).
_AVERAGED: 'weakref.WeakSet[torch.Tensor]' = weakref.WeakSet()


def replicate_scalar_parameters(model: nn.Module) -> List[nn.Parameter]:
    """The 0-dim parameters of ``model`` (FSDP cannot shard them), each
    given a hook that averages its gradient over the ranks once it is
    accumulated, so every rank applies the same update."""
    scalars = [p for p in model.parameters() if p.dim() == 0]
    for param in scalars:
        if param.requires_grad and param not in _AVERAGED:
            param.register_post_accumulate_grad_hook(_average_grad)
            _AVERAGED.add(param)
    return scalars
