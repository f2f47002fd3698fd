"""``SoftLabelCacheHook``: compute the core-based soft labels p_c once,
store them on disk, reuse them on the next run and on resume.

Before training (also of a resumed run) the hook fills the table
``p_c[sample_idx]`` of the model's soft-label component
(:class:`~drm_mm.models.soft_labels.CoreSoftLabels`), in data order: the
pass's pipeline (:mod:`drm_mm.engine.soft_label_pipeline`), the teacher and
its fingerprint (``component.start_pass()``), the cache key and file
(:mod:`~drm_mm.models.soft_labels.cache_key`,
:mod:`~drm_mm.models.soft_labels.table_cache`, checked on rank 0), on a
miss the sharded pass (:mod:`~drm_mm.models.soft_labels.sharded_pass`)
into the dense ``.pt`` file or every rank's rows into the memmap file,
then ``component.set_table()`` and ``component.end_pass()``. A mapped
table is re-checked at each epoch start and before each checkpoint
(``component.check_table()``): a cache file rewritten by another job stops
the run with one line instead of training on it.

Cache folder (``cache_dir``): default ``<work_dir>/../.soft_label_cache``,
shared by every run under the same ``work_dirs/``; in multi-node runs it
must be on a file system that all nodes see.
"""
import os.path as osp
from typing import Any, List, Optional

import torch
from mmengine import dist as mm_dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from drm_mm.engine.soft_label_pipeline import soft_label_pipeline
from drm_mm.models.soft_labels.cache_key import cache_key
from drm_mm.models.soft_labels.pipeline_view import pass_dataset
from drm_mm.models.soft_labels.sharded_pass import ShardedPass
from drm_mm.models.soft_labels.table_cache import (TableCache,
                                                   remove_stale_tmp_files)
from drm_mm.models.soft_labels.table_storage import write_rows
from drm_mm.registry import HOOKS


@HOOKS.register_module()
class SoftLabelCacheHook(Hook):
    """Compute or load the p_c table before training (see module doc).

    Args:
        pipeline (list[dict], optional): test-time transforms of the pass.
            Defaults to None: the ID validation set's pipeline (every
            evaluated set must agree with it).
        cache_dir (str, optional): folder of the cached tables. Defaults to
            None: ``<work_dir>/../.soft_label_cache``.
        batch_size (int): images per teacher forward. Defaults to 64.
        num_workers (int): data-loading workers of the pass. Defaults to 0.
        dtype (str): storage dtype of the dense table, ``'float32'`` or
            ``'float16'`` (halves memory and disk for large datasets; looked
            up rows are float32). ``soft_labels.storage='memmap'`` is always
            float16. Defaults to ``'float32'``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 pipeline: Optional[List[dict]] = None,
                 cache_dir: Optional[str] = None,
                 batch_size: int = 64,
                 num_workers: int = 0,
                 dtype: str = 'float32') -> None:
        if dtype not in ('float32', 'float16'):
            raise ValueError(f"SoftLabelCacheHook.dtype={dtype!r}; use "
                             f"'float32' or 'float16'.")
        self.pipeline = pipeline
        self.cache_dir = cache_dir
        self.sharded_pass = ShardedPass(batch_size, num_workers)
        self.dtype = getattr(torch, dtype)
        #: Number of tables computed (not loaded) by this hook.
        self.num_computed = 0
        #: 'computed' or 'cache' after the last call; None if skipped.
        self.last_source: Optional[str] = None
        self.last_path: Optional[str] = None
        self._component: Any = None

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        pipeline = self.pipeline
        if pipeline is None and _component(model).needs_table:
            pipeline, key = soft_label_pipeline(runner.cfg)
            runner.logger.info(f'SoftLabelCacheHook: the pass uses {key}.')
        cache_dir = self.cache_dir or osp.join(
            osp.dirname(osp.abspath(runner.work_dir)), '.soft_label_cache')
        table = self.load_or_compute(model, runner.train_dataloader.dataset,
                                     pipeline, cache_dir, runner.logger)
        if table is None:
            runner.logger.info(
                'SoftLabelCacheHook: nothing to do (wrm_weight = 0 or soft '
                "labels computed online).")

    def before_train_epoch(self, runner) -> None:
        if self._component is not None:
            self._component.check_table()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self.before_train_epoch(runner)

    def load_or_compute(self, model: Any, dataset: Any,
                        pipeline: Optional[List[dict]], cache_dir: str,
                        logger: Any = None) -> Any:
        """Fill the p_c table of ``model``'s soft-label component from the
        cache or a pass; returns it (None when the model needs none)."""
        component = _component(model)
        self.last_source = None
        if not component.needs_table:
            return None
        if pipeline is None:
            raise ValueError('SoftLabelCacheHook: no pipeline for the pass; '
                             'set pipeline=[...] (the test-time transforms) '
                             'of SoftLabelCacheHook in custom_hooks.')
        dataset = pass_dataset(dataset)
        fingerprint = component.start_pass()
        try:
            cache = self._find(component, fingerprint,
                               model.data_preprocessor, dataset, pipeline,
                               cache_dir, logger)
            if self.last_source == 'cache':
                table = cache.load(logger)
            else:
                table = self._compute(cache, component,
                                      model.data_preprocessor, dataset,
                                      pipeline, logger)
        finally:
            component.end_pass()
        component.set_table(table)
        self._component = component
        return table

    def _find(self, component, fingerprint, preprocessor, dataset, pipeline,
              cache_dir, logger) -> TableCache:
        """The cache file of this input, checked on rank 0 (broadcast)."""
        storage, topk = component.storage, component.topk
        shape = (len(dataset), int(fingerprint['num_classes']))
        shared: list = [None, None, None]
        if mm_dist.is_main_process():
            remove_stale_tmp_files(cache_dir, logger)
            key = cache_key(fingerprint, dataset, pipeline, preprocessor,
                            storage, topk, self.dtype)
            cache = TableCache.in_folder(cache_dir, key, shape, topk, dict(
                tau=component.tau, normalization=component.normalization))
            shared = [cache.path, cache.key, cache.valid(logger)]
        mm_dist.broadcast_object_list(shared)
        if not mm_dist.is_main_process():  # (the file identity stays local)
            cache = TableCache(shared[0], shared[1], shape, topk)
        self.last_path, self.last_source = cache.path, (
            'cache' if shared[2] else None)
        cache.announce(shared[2], logger)
        return cache

    def compute(self, component: Any, preprocessor: Any, dataset: Any,
                pipeline: List[dict], sink=None) -> Optional[torch.Tensor]:
        """The teacher pass (:class:`ShardedPass`) of ``component``."""
        return self.sharded_pass.run(component, preprocessor, dataset,
                                     pipeline, sink)

    def _compute(self, cache: TableCache, component, preprocessor, dataset,
                 pipeline, logger) -> Any:
        """The pass into a dense table (written by rank 0) or into the
        memmap file (rank 0 creates and commits it, every rank writes)."""
        main = mm_dist.is_main_process()
        if cache.dense:
            table = self.compute(component, preprocessor, dataset,
                                 pipeline).to(self.dtype)
            self.num_computed += 1
            self.last_source = 'computed'
            if main:
                cache.save_dense(table, logger)
            mm_dist.barrier()
            return table
        tmp = [cache.create_file() if main else None]
        try:
            mm_dist.broadcast_object_list(tmp)
            self.compute(component, preprocessor, dataset, pipeline,
                         sink=lambda start, rows: write_rows(
                             tmp[0], start, rows, cache.topk))
            mm_dist.barrier()
            if main:
                cache.commit_file(tmp[0])
            mm_dist.barrier()
        except BaseException:
            if main:
                cache.discard(tmp[0])
            raise
        self.num_computed, self.last_source = self.num_computed + 1, 'computed'
        return cache.load(logger)


def _component(model: Any) -> Any:
    component = getattr(model, 'soft_labels', None)
    if not callable(getattr(component, 'start_pass', None)):
        raise TypeError(f'SoftLabelCacheHook needs a model whose '
                        f'soft_labels component has start_pass() (e.g. '
                        f'DRMClassifier), got {type(model).__name__}.')
    return component
