"""Optimizer wrappers that refuse a non-finite loss before it reaches the
weights: :class:`DivergenceGuardOptimWrapper` and its AMP form."""
import os.path as osp
from typing import Dict, Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from drm_mm.registry import OPTIM_WRAPPERS

#: What a guard does with a non-finite loss.
ACTIONS = ('stop', 'skip')


class DivergenceError(RuntimeError):
    """Training stopped because the loss became NaN or infinite."""


def _all_finite(loss: torch.Tensor) -> bool:
    """True when ``loss`` is finite on every rank (one all-reduce, so all
    ranks take the same branch and no collective is left waiting)."""
    flag = torch.isfinite(loss.detach()).all().float().reshape(1)
    if is_distributed():
        if torch_dist.get_backend() == 'nccl':
            flag = flag.cuda()
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MIN)
    return bool(flag.item() > 0)


def _where(hub: MessageHub) -> str:
    return (f'iteration {int(hub.get_info("iter", 0)) + 1} '
            f'(epoch {int(hub.get_info("epoch", 0)) + 1})')


def _last_good(hub: MessageHub) -> str:
    last = hub.get_info('last_ckpt')
    if last and osp.isfile(last):
        return f'the last checkpoint, {last}, is the last good one'
    return 'no checkpoint was saved yet'


class _DivergenceGuard:
    """``update_params`` that checks the loss before backward (shared by
    the wrappers below, listed first in their bases)."""

    def __init__(self, *args, on_nonfinite: str = 'stop',
                 max_skips: Optional[int] = 100, **kwargs) -> None:
        if on_nonfinite not in ACTIONS:
            raise ValueError(f'optim_wrapper.on_nonfinite must be one of '
                             f'{ACTIONS}, got {on_nonfinite!r}.')
        if max_skips is not None and (isinstance(max_skips, bool)
                                      or not isinstance(max_skips, int)
                                      or max_skips < 0):
            raise ValueError('optim_wrapper.max_skips must be an integer '
                             f'>= 0 or None, got {max_skips!r}.')
        super().__init__(*args, **kwargs)
        self.on_nonfinite = on_nonfinite
        self.max_skips = max_skips
        self.skipped = 0

    def update_params(self, loss: torch.Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """Backward and step as MMEngine does when the loss is finite on
        every rank; otherwise stop or skip the update (module doc)."""
        if _all_finite(loss):
            return super().update_params(loss, step_kwargs, zero_kwargs)
        hub = MessageHub.get_current_instance()
        value = float(loss.detach().float().sum())
        if self.on_nonfinite == 'stop' or (
                self.max_skips is not None
                and self.skipped >= self.max_skips):
            raise DivergenceError(
                f'Loss became {value} at {_where(hub)}; training stopped '
                f'before the update, so {_last_good(hub)}. Lower the '
                'learning rate, set optim_wrapper.clip_grad, or set '
                "optim_wrapper.on_nonfinite='skip'.")
        self.skipped += 1
        self.zero_grad(**(zero_kwargs or {}))
        hub.update_scalar('train/skipped_steps', self.skipped)
        print_log(f'Non-finite loss ({value}) at {_where(hub)}: update '
                  f'skipped ({self.skipped} so far).', logger='current',
                  level=30)


@OPTIM_WRAPPERS.register_module()
class DivergenceGuardOptimWrapper(_DivergenceGuard, OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` that checks the loss before
    each backward: a NaN or infinite loss never reaches the gradients, the
    weights or the optimizer state, so the last checkpoint stays the last
    good one. Ranks agree on the decision (one all-reduce of a flag).

    Used by every drm_mm schedule
    (``optim_wrapper=dict(type='drm_mm.DivergenceGuardOptimWrapper')``).

    Args:
        on_nonfinite (str): ``'stop'`` raises :class:`DivergenceError`
            naming the iteration and the last good checkpoint; ``'skip'``
            drops the update, counts it (``train/skipped_steps``) and logs
            it. Defaults to ``'stop'``.
        max_skips (int, optional): with ``'skip'``, stop anyway after this
            many skipped updates; None never stops. Defaults to 100.
        **kwargs: the arguments of :class:`OptimWrapper`.
    """


@OPTIM_WRAPPERS.register_module()
class DivergenceGuardAmpOptimWrapper(_DivergenceGuard, AmpOptimWrapper):
    """:class:`DivergenceGuardOptimWrapper` with automatic mixed precision
    (:class:`mmengine.optim.AmpOptimWrapper`: ``dtype``, ``loss_scale``);
    used by the bf16 ViT-L/14 configs. The loss is checked before it is
    scaled.

    Args:
        on_nonfinite (str): as :class:`DivergenceGuardOptimWrapper`.
            Defaults to ``'stop'``.
        max_skips (int, optional): as :class:`DivergenceGuardOptimWrapper`.
            Defaults to 100.
        **kwargs: the arguments of :class:`AmpOptimWrapper`.
    """
