"""``DivergenceGuardHook``: stop (or skip the step) when the loss is NaN/inf,
before the bad gradients touch the weights."""
import os.path as osp
from typing import Any, Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.hooks import Hook

from drm_mm.registry import HOOKS

ACTIONS = ('stop', 'skip')


class DivergenceError(RuntimeError):
    """Training stopped because the loss became NaN or infinite."""


def _last_good(runner: Any) -> str:
    """Where the last good weights are, for the error message."""
    last = runner.message_hub.get_info('last_ckpt')
    if last and osp.isfile(last):
        return f'the last checkpoint, {last}, is the last good one'
    return (f'no checkpoint was saved yet (nothing to resume from in '
            f'{runner.work_dir})')


@HOOKS.register_module()
class DivergenceGuardHook(Hook):
    """Guard every optimizer update against a non-finite loss.

    The check runs inside ``optim_wrapper.update_params`` *before* backward,
    so a NaN never reaches the weights or the optimizer state, and the last
    checkpoint stays the last good one. Ranks agree on the decision (one
    all-reduce of a flag), so DDP never deadlocks on a skipped backward.

    Args:
        action: ``'stop'`` raises :class:`DivergenceError` naming the
            iteration; ``'skip'`` drops the update, counts it and logs it.
        max_skips: with ``'skip'``, stop anyway after this many skipped
            updates (None: never).
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'stop',
                 max_skips: Optional[int] = 100) -> None:
        if action not in ACTIONS:
            raise ValueError(f'DivergenceGuardHook.action must be one of '
                             f'{ACTIONS}, got {action!r}.')
        if max_skips is not None and max_skips < 0:
            raise ValueError('DivergenceGuardHook.max_skips must be >= 0 or '
                             f'None, got {max_skips}.')
        self.action = action
        self.max_skips = max_skips
        self.skipped = 0

    @staticmethod
    def _all_finite(loss: torch.Tensor) -> bool:
        flag = torch.isfinite(loss.detach()).all().float().reshape(1)
        if is_distributed():
            if torch_dist.get_backend() == 'nccl':
                flag = flag.cuda()
            torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def before_train(self, runner: Any) -> None:
        wrapper = runner.optim_wrapper
        original = wrapper.update_params
        hook = self

        def guarded_update_params(loss: torch.Tensor, *args: Any,
                                  **kwargs: Any) -> None:
            if hook._all_finite(loss):
                return original(loss, *args, **kwargs)
            where = f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'
            if hook.action == 'stop' or (hook.max_skips is not None
                                         and hook.skipped >= hook.max_skips):
                raise DivergenceError(
                    f'Loss became {float(loss.detach().float().sum())} at '
                    f'{where}; training stopped before the update, so '
                    f'{_last_good(runner)}. Lower the learning rate, enable '
                    f'gradient clipping (optim_wrapper.clip_grad) or use '
                    f"DivergenceGuardHook(action='skip').")
            hook.skipped += 1
            wrapper.zero_grad()
            runner.message_hub.update_scalar('train/skipped_steps',
                                             hook.skipped)
            runner.logger.warning(
                f'Non-finite loss at {where}: update skipped '
                f'({hook.skipped} so far).')

        wrapper.update_params = guarded_update_params
