"""``DivergenceGuardHook``: checks that the optimizer wrapper guards the
loss (the guard itself is :class:`DivergenceGuardOptimWrapper`)."""
from typing import Any, Optional

from mmengine.hooks import Hook

from drm_mm.engine.optim_wrappers.divergence_guard_optim_wrapper import (
    ACTIONS, DivergenceError, _DivergenceGuard)
from drm_mm.registry import HOOKS

__all__ = ['DivergenceGuardHook', 'DivergenceError']


@HOOKS.register_module()
class DivergenceGuardHook(Hook):
    """Kept for configs that list it: the NaN / inf guard is the optimizer
    wrapper (``optim_wrapper=dict(type='drm_mm.DivergenceGuardOptimWrapper',
    on_nonfinite='stop')``, the default of drm_mm's schedules). This hook
    only checks, before training, that the wrapper is a guard with the
    same action, and raises a one-line error naming the fix otherwise.

    Args:
        action (str): the ``on_nonfinite`` the wrapper must have
            (``'stop'`` or ``'skip'``). Defaults to ``'stop'``.
        max_skips (int, optional): unused, accepted for old configs
            (set ``optim_wrapper.max_skips``). Defaults to None.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'stop',
                 max_skips: Optional[int] = None) -> None:
        if action not in ACTIONS:
            raise ValueError(f'DivergenceGuardHook.action must be one of '
                             f'{ACTIONS}, got {action!r}.')
        self.action = action

    def before_train(self, runner: Any) -> None:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, _DivergenceGuard):
            raise ValueError(
                f'DivergenceGuardHook: optim_wrapper is '
                f'{type(wrapper).__name__}, which does not guard the loss; '
                "set optim_wrapper.type='drm_mm.DivergenceGuardOptimWrapper' "
                "(or 'drm_mm.DivergenceGuardAmpOptimWrapper' with AMP) and "
                'remove the hook.')
        if wrapper.on_nonfinite != self.action:
            raise ValueError(
                f"DivergenceGuardHook(action='{self.action}') but "
                f"optim_wrapper.on_nonfinite='{wrapper.on_nonfinite}'; set "
                'optim_wrapper.on_nonfinite and remove the hook.')
