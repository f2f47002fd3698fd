"""``AtomicCheckpointHook``: MMEngine's CheckpointHook that removes an old
checkpoint only after the new one is complete."""
import glob
import os
import os.path as osp
from typing import Any, List

from mmengine.dist import barrier, is_main_process
from mmengine.hooks import CheckpointHook

from drm_mm.registry import HOOKS


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """Same arguments and files as :class:`mmengine.hooks.CheckpointHook`.

    MMEngine 0.10 deletes the oldest checkpoint (``max_keep_ckpts``) and the
    previous best one (``save_best``) *before* writing the new one, so with
    ``max_keep_ckpts=1`` a kill during the write leaves no checkpoint. This
    hook writes first (``DRMRunner`` writes ``<name>.tmp`` and renames) and
    removes the outdated files afterwards. ``DRMRunner`` uses it in place of
    ``CheckpointHook``. Leftover ``*.pth.tmp`` files of a killed write are
    removed before training.

    The one place drm_mm overrides private MMEngine methods: MMEngine
    0.10.7's ``CheckpointHook._save_checkpoint_with_step`` and
    ``_save_best_checkpoint`` remove the old files and write the new one
    in one method, with no public point in between; overriding the public
    ``after_train_epoch`` / ``after_train_iter`` / ``after_val_epoch``
    instead would copy their whole schedule and best-score logic. Check
    both methods when MMEngine is upgraded.
    """

    def before_train(self, runner: Any) -> None:
        super().before_train(runner)
        if not is_main_process() or '://' in str(self.out_dir):
            return
        for path in glob.glob(osp.join(str(self.out_dir), '*.pth.tmp')):
            os.remove(path)
            runner.logger.info(f'Removed {path}, left by an interrupted '
                               'checkpoint write.')
        # a previous best whose removal a kill interrupted
        current = ({None: self.best_ckpt_path} if self.save_best and len(
            self.key_indicators) == 1 else dict(
                getattr(self, 'best_ckpt_path_dict', None) or {}))
        for key, best in current.items():
            if not best:
                continue
            indicator = self.key_indicators[0] if key is None else key
            prefix = f'best_{indicator}_'.replace('/', '_')
            for path in glob.glob(osp.join(str(self.out_dir),
                                           f'{glob.escape(prefix)}*.pth')):
                if osp.basename(path) != osp.basename(best):
                    os.remove(path)
                    runner.logger.info(f'Removed the outdated best '
                                       f'checkpoint {path}.')

    def _remove(self, runner: Any, path: str) -> None:
        if not is_main_process() or not path:
            return
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # deepspeed checkpoints
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner: Any, step: int,
                                   meta: dict) -> None:
        """MMEngine's method with the removal after the write. The written
        checkpoint still lists the outdated ids in ``keep_ckpt_ids``: if
        the run is killed before they are removed, MMEngine's
        ``before_train`` removes them on resume."""
        outdated: List[int] = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info(
                'keep_ckpt_ids', outdated + list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args,
            **self.args)
        if is_main_process():
            with open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                f.write(self.last_ckpt)
            for old in outdated:
                self._remove(runner, self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(old)))
        if self.max_keep_ckpts > 0:
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        barrier()  # last_checkpoint names it before any rank goes on

    def _save_best_checkpoint(self, runner: Any, metrics: dict) -> None:
        if not self.save_best:
            return
        single = len(self.key_indicators) == 1
        if single:
            previous = {None: self.best_ckpt_path}
            self.best_ckpt_path = None  # MMEngine removes it otherwise
        else:
            previous = dict(self.best_ckpt_path_dict)
            self.best_ckpt_path_dict = dict.fromkeys(previous)
        try:
            super()._save_best_checkpoint(runner, metrics)
        except BaseException:
            self._set_best(single, previous)  # the old files still stand
            raise
        for key, old in previous.items():
            new = self.best_ckpt_path if single else \
                self.best_ckpt_path_dict[key]
            if new is None:  # not improved: the previous best stays
                self._set_best(single, {key: old})
            elif old and old != new:
                self._remove(runner, old)
                runner.logger.info(
                    f'The previous best checkpoint {old} is removed')

    def _set_best(self, single: bool, paths: dict) -> None:
        for key, path in paths.items():
            if single:
                self.best_ckpt_path = path
            else:
                self.best_ckpt_path_dict[key] = path
