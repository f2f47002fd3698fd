"""``ResumePositionHook``: every checkpoint stores the train loop's true
position, so a resume continues where the checkpoint was written."""
from typing import Any

from mmengine.hooks import Hook

from drm_mm.registry import HOOKS


@HOOKS.register_module()
class ResumePositionHook(Hook):
    """Write the train loop's ``resume_position()`` into the ``epoch`` and
    ``iter`` of each checkpoint's ``meta`` (before it is written).

    MMEngine 0.10.7's ``FlexibleRunner.save_checkpoint`` replaces the
    ``epoch`` / ``iter`` that ``CheckpointHook`` passes with values derived
    from ``by_epoch`` alone: the epoch checkpoint written again after a
    validation (``save_best``) then stores the *next* epoch, and a resume
    skips a whole epoch. ``Runner`` keeps the hook's values; with this hook
    both runners store the same. Loops without ``resume_position`` (e.g.
    ``IterBasedTrainLoop``) leave the meta as MMEngine wrote it.
    :class:`DRMRunner` and :class:`DRMFlexibleRunner` always add this hook.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        position = getattr(runner.train_loop, 'resume_position', None)
        if position is None:
            return
        epoch, iteration = position()
        checkpoint.setdefault('meta', {}).update(epoch=epoch, iter=iteration)
