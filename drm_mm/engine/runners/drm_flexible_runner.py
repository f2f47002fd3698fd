"""``DRMFlexibleRunner``: MMEngine's FlexibleRunner (strategies: FSDP,
DeepSpeed...) with what :class:`DRMRunner` adds to the plain Runner."""
import os
import os.path as osp
import shutil
from typing import Dict, Set, Union

from mmengine.dist import barrier, infer_launcher, is_main_process
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, FlexibleRunner
from torch import nn

from drm_mm.engine.runners.drm_runner import (
    DRMRunner, register_class_consistency_hook)
from drm_mm.engine.wise_ft import CheckpointMismatchError
from drm_mm.registry import RUNNERS
from drm_mm.utils.safe_checkpoint import mmengine_checkpoint_globals

#: Words of torch's / MMEngine's error for a state dict that does not fit.
_MISMATCH_WORDS = ('do not match exactly', 'Missing key', 'Unexpected key',
                   'size mismatch')


@RUNNERS.register_module()
class DRMFlexibleRunner(FlexibleRunner):
    """Runner of the sharded configs (``runner_type=
    'drm_mm.DRMFlexibleRunner'`` with ``strategy=dict(type=
    'drm_mm.DRMFSDPStrategy')``).

    Like :class:`DRMRunner`: checkpoints load with ``weights_only=True`` and
    MMEngine's own types allowed, strictly (a checkpoint of another
    architecture raises :class:`CheckpointMismatchError`); checkpoints are
    written to ``<name>.tmp`` and renamed; ``--resume auto`` skips a
    truncated latest checkpoint; ``train_cfg=dict(by_epoch=True)`` builds
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

    # DRMRunner's choice of the checkpoint to resume (reads work_dir/logger)
    _resume_candidates = DRMRunner._resume_candidates
    _pick_resume_checkpoint = DRMRunner._pick_resume_checkpoint
    _read_last_checkpoint = DRMRunner._read_last_checkpoint

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

    def build_train_loop(self, loop: Union[BaseLoop, Dict]) -> BaseLoop:
        from drm_mm.engine.loops.resumable_epoch_based_train_loop import \
            resolve_train_loop
        return super().build_train_loop(resolve_train_loop(loop))

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        """Also adds :class:`ClassConsistencyHook` unless the config lists
        it (as :class:`DRMRunner` does)."""
        super().register_hooks(default_hooks, custom_hooks)
        register_class_consistency_hook(self)

    # -- soft labels before sharding -----------------------------------
    def train(self) -> nn.Module:
        self._soft_labels_before_sharding()
        return super().train()

    def _soft_labels_before_sharding(self) -> None:
        from mmengine.device import get_device
        from mmengine.model import is_model_wrapper

        from drm_mm.engine.hooks import (ClassConsistencyHook,
                                         SoftLabelCacheHook)
        hooks = [h for h in self._hooks if isinstance(h, SoftLabelCacheHook)]
        if not hooks or is_model_wrapper(self.model):
            return
        if not isinstance(self.model, nn.Module):
            self.model = self.strategy.build_model(self.model)
        # Classes are checked before the teacher's pass, as with DRMRunner
        # (where the hook's priority orders it); the property builds the
        # train loop so that the check sees its dataset.
        if self.train_loop is not None:
            for hook in self._hooks:
                if isinstance(hook, ClassConsistencyHook):
                    hook.check(self, ['train'])
        preprocessor = getattr(self.model, 'data_preprocessor', None)
        if preprocessor is not None:  # the teacher runs where its inputs go
            preprocessor.to(get_device())
        for hook in hooks:
            hook.before_train(self)
            self._ran_before_sharding.add(id(hook))

    def call_hook(self, fn_name: str, **kwargs) -> None:
        if fn_name != 'before_train' or not self._ran_before_sharding:
            return super().call_hook(fn_name, **kwargs)
        for hook in self._hooks:
            if id(hook) not in self._ran_before_sharding and hasattr(
                    hook, fn_name):
                try:
                    getattr(hook, fn_name)(self, **kwargs)
                except TypeError as e:
                    raise TypeError(f'{e} in {hook}') from e

    # -- checkpoints ----------------------------------------------------
    def load_or_resume(self) -> None:
        if self._has_loaded:
            return None
        if self._resume is True and self._load_from is None:
            picked = self._pick_resume_checkpoint()
            if picked is not None:
                self.logger.info(f'Auto resume from {picked}.')
                self._resume = picked
        return super().load_or_resume()

    def resume(self, filename: str, *args, **kwargs) -> None:
        with mmengine_checkpoint_globals(
                repr(filename),
                extra=self.cfg.get('checkpoint_safe_globals') or ()):
            return super().resume(filename, *args, **kwargs)

    def load_checkpoint(self, filename: str, map_location='cpu',
                        strict: bool = True,
                        revise_keys=((r'^module.', ''), )) -> None:
        """Strict, safe loading; a checkpoint that does not fit the model
        raises :class:`CheckpointMismatchError`."""
        try:
            with mmengine_checkpoint_globals(
                    repr(filename),
                    extra=self.cfg.get('checkpoint_safe_globals') or ()):
                return super().load_checkpoint(filename, map_location,
                                               strict, list(revise_keys))
        except RuntimeError as err:
            if not any(word in str(err) for word in _MISMATCH_WORDS):
                raise
            lines = [line.strip() for line in str(err).splitlines()
                     if line.strip()]
            detail = '; '.join(line[:200] for line in lines[:3])
            raise CheckpointMismatchError(
                f'checkpoint {filename!r} does not fit the model of this '
                f'config ({detail}). Load a checkpoint of the same model '
                'config, or unset load_from.') from None

    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        **kwargs) -> None:
        """Write ``<filename>.tmp`` (a file, or a folder of per-rank shards
        with ``state_dict_cfg='local'``), then rename it on rank 0."""
        if '://' in out_dir:  # remote backends: no rename semantics
            return super().save_checkpoint(out_dir, filename, *args,
                                           **kwargs)
        final = osp.join(out_dir, filename)
        tmp = f'{final}.tmp'
        super().save_checkpoint(out_dir, f'{filename}.tmp', *args, **kwargs)
        barrier()  # every rank's shard is written
        if is_main_process():
            if osp.isdir(tmp) and osp.isdir(final):
                shutil.rmtree(final)
            os.replace(tmp, final)
        barrier()
