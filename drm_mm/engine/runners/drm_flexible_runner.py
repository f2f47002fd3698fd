"""``DRMFlexibleRunner``: MMEngine's FlexibleRunner (strategies: FSDP,
DeepSpeed...) with what :class:`DRMRunner` adds to the plain Runner."""
from typing import Set, Union

from mmengine.dist import infer_launcher
from mmengine.logging import print_log
from mmengine.runner import FlexibleRunner
from torch import nn

from drm_mm.registry import RUNNERS

from .drm_runner import DRMRunner
from .drm_runner_mixin import DRMRunnerMixin


@RUNNERS.register_module()
class DRMFlexibleRunner(DRMRunnerMixin, FlexibleRunner):
    """Runner of the sharded configs (``runner_type=
    'drm_mm.DRMFlexibleRunner'`` with ``strategy=dict(type=
    'drm_mm.DRMFSDPStrategy')``).

    Like :class:`DRMRunner` (both through :class:`DRMRunnerMixin`):
    checkpoints load with ``weights_only=True`` and
    MMEngine's own types allowed, strictly (a checkpoint of another
    architecture raises :class:`CheckpointMismatchError`); checkpoints are
    written to ``<name>.tmp`` and renamed; ``--resume auto`` skips a
    damaged latest checkpoint; every checkpoint stores the loop's true
    position (:class:`ResumePositionHook`); a second run on the same work
    dir is refused; ``train_cfg=dict(by_epoch=True)`` builds
    :class:`ResumableEpochBasedTrainLoop`; :class:`ClassConsistencyHook`
    is always added (every dataset's classes must match
    ``model.classnames``). CPU/gloo support is the
    strategy's (:class:`DRMFSDPStrategy`).

    One process (no launcher, e.g. ``tools/test.py`` or ``tools/wise_ft.py``
    run plainly): there is nothing to shard and :meth:`from_cfg` returns a
    :class:`DRMRunner` for the same config (logged); checkpoints are the
    same either way.

    Added for sharding: the soft-label pass (:class:`SoftLabelCacheHook`)
    runs before the strategy shards the model, on the whole CLIP, so the
    frozen teacher is copied from unsharded weights; its ``before_train``
    is not called again. The train set's classes are checked just before
    that pass.
    """

    @classmethod
    def from_cfg(cls, cfg) -> Union[FlexibleRunner, DRMRunner]:
        launcher = cfg.get('launcher') or infer_launcher()
        if launcher == 'none':
            print_log('DRMFlexibleRunner: one process (no launcher), '
                      'nothing to shard: running this config with '
                      'DRMRunner.', logger='current')
            return DRMRunner.from_cfg(cfg)
        return super().from_cfg(cfg)

    def __init__(self, *args, **kwargs) -> None:
        self._ran_before_sharding: Set[int] = set()
        super().__init__(*args, **kwargs)

    # -- soft labels before sharding -----------------------------------
    def train(self) -> nn.Module:
        self.lock_work_dir()
        self._soft_labels_before_sharding()
        return super().train()

    def _soft_labels_before_sharding(self) -> None:
        from mmengine.device import get_device
        from mmengine.model import is_model_wrapper

        from drm_mm.engine.hooks import (ClassConsistencyHook,
                                         SoftLabelCacheHook)
        hooks = [h for h in self.hooks if isinstance(h, SoftLabelCacheHook)]
        if not hooks or is_model_wrapper(self.model):
            return
        if not isinstance(self.model, nn.Module):
            self.model = self.strategy.build_model(self.model)
        # Classes are checked before the teacher's pass, as with DRMRunner
        # (where the hook's priority orders it); the property builds the
        # train loop so that the check sees its dataset.
        if self.train_loop is not None:
            for hook in self.hooks:
                if isinstance(hook, ClassConsistencyHook):
                    hook.check(self, ['train'])
        preprocessor = getattr(self.model, 'data_preprocessor', None)
        if preprocessor is not None:  # the teacher runs where its inputs go
            preprocessor.to(get_device())
        for hook in hooks:
            hook.before_train(self)
            self._ran_before_sharding.add(id(hook))

    def call_hook(self, fn_name: str, **kwargs) -> None:
        """MMEngine's ``call_hook``, except that ``before_train`` skips the
        hooks already run before sharding.

        The one override of a runner internal: MMEngine 0.10.7's
        ``FlexibleRunner.train`` shards the model and calls
        ``before_train`` with no hook point in between, and the soft-label
        teacher must be copied from the unsharded CLIP.
        """
        if fn_name != 'before_train' or not self._ran_before_sharding:
            return super().call_hook(fn_name, **kwargs)
        for hook in self.hooks:
            if id(hook) not in self._ran_before_sharding and hasattr(
                    hook, fn_name):
                try:
                    getattr(hook, fn_name)(self, **kwargs)
                except TypeError as e:
                    raise TypeError(f'{e} in {hook}') from e
