"""``SoftLabelCacheHook``: compute the core-based soft labels p_c once,
store them on disk, reuse them on the next run and on resume.

Before training (also of a resumed run) the hook calls one method of the
model's soft-label component, ``fill_table(make_table)``. The component
passes its fingerprint and its teacher (preprocessed images -> p_c) to
``make_table``, which loads the table ``p_c[sample_idx]`` from the cache
folder or runs the teacher over the whole training set with the
*test-time* pipeline and the model's data preprocessor. The file is named
by a hash of everything that determines p_c:

* dataset identity: class, root, split, annotation / metadata files (path,
  size, mtime), length and a digest of the data list;
* the images: path, size and mtime of every sample's file (a repaired or
  replaced image changes the key; hashing their bytes would cost as much
  as the pass), and the bytes of in-memory images;
* the data preprocessor: its output on a fixed probe image (mean, std,
  ``to_rgb`` and anything else it does);
* the component's fingerprint: the teacher's architecture config and a
  digest of its weights, the concept descriptions, normalisation and τ;
* the test pipeline and the storage dtype.

A cache file that cannot be read, has the wrong shape, NaN / inf, negative
values or rows that do not sum to 1 is refused (logged) and recomputed.
Files are written to ``<name>.tmp<PID>.<host>`` and renamed; the temporary
file is removed on any error (a full disk only costs the cache, training
goes on), and those of dead processes of this host are removed on the next
pass.

With ``soft_labels.storage='memmap'`` (optionally ``topk=k``) the table
is a float16 ``.npy`` file instead: rank 0 creates ``<name>.npy.tmp..``,
every rank writes its slice of the pass into it (no all-gather, no copy
per rank), rank 0 validates it in chunks of rows and renames it, and every
rank maps it read-only (``mmap_mode='r'``), so the page cache holds it once
per node (the cache folder is shared by the nodes, as for ``.pt``
files). With top-k the mean p_c mass outside the top k is logged. The
file's blocks are reserved when it is created, so a full disk fails there;
with memmap storage that error stops the run (the table lives only in the
file).

Cache folder (``cache_dir``): default ``<work_dir>/../.soft_label_cache``,
i.e. shared by every run under the same ``work_dirs/``. It must be on a
file system that all nodes see in multi-node runs. In a distributed run the
pass is sharded: each rank computes a contiguous slice of the samples and
the slices are all-gathered; rank 0 writes the file and shows a progress
bar with an ETA.
"""
import contextlib
import hashlib
import json
import logging
import os
import os.path as osp
import re
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine import dist as mm_dist
from mmengine.dataset import Compose, pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import MMLogger, print_log
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader, Dataset

from drm_mm.datasets.transforms.load_image_draft import CorruptImageError
from drm_mm.models.rank_shards import shard_bounds
from drm_mm.models.soft_labels import table_problem
from drm_mm.models.soft_labels.table_storage import (TopKTable,
                                                     chunked_problem,
                                                     create_table_file,
                                                     open_table, write_rows)
from drm_mm.registry import HOOKS, TRANSFORMS, build_in_scope

CACHE_VERSION = 2
_DATASET_ATTRS = ('data_root', 'split', 'ann_file', 'metadata_file',
                  'data_prefix', 'split_scheme', 'version')
#: ``<cache>.tmp<PID>`` or ``<cache>.tmp<PID>.<host>``
_TMP_NAME = re.compile(
    r'^soft_labels_\w+\.(?:pt|npy)\.tmp(\d+)(?:\.(.+))?$')


def _digest(obj: Any) -> str:
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_stamp(path: Any) -> Optional[Dict[str, Any]]:
    if isinstance(path, (str, os.PathLike)) and osp.isfile(path):
        stat = os.stat(path)
        return dict(path=osp.abspath(path), size=stat.st_size,
                    mtime_ns=stat.st_mtime_ns)
    return None


def dataset_fingerprint(dataset: Any) -> Dict[str, Any]:
    """What identifies the samples of a dataset (for the cache key)."""
    info: Dict[str, Any] = dict(type=type(dataset).__name__,
                                length=len(dataset))
    for attr in _DATASET_ATTRS:
        if hasattr(dataset, attr):
            value = getattr(dataset, attr)
            info[attr] = value if isinstance(
                value, (int, float, str, bool, type(None))) else str(value)
            stamp = _file_stamp(value)
            if stamp is not None:
                info[attr + '_file'] = stamp
    folder = getattr(dataset, 'dataset_dir', None)
    for name in getattr(dataset, 'REQUIRED_FILES', ()) if folder else ():
        info[f'file:{name}'] = _file_stamp(osp.join(folder, name))
    if getattr(dataset, 'serialize_data', False) and hasattr(
            dataset, 'data_bytes'):
        info['data_list'] = hashlib.sha256(
            memoryview(dataset.data_bytes)).hexdigest()
    else:
        hasher = hashlib.sha256()
        for i in range(len(dataset)):
            hasher.update(repr(sorted(dataset.get_data_info(i).items(),
                                      key=lambda kv: kv[0])).encode())
        info['data_list'] = hasher.hexdigest()
    return info


def image_stamps(dataset: Any) -> str:
    """Digest of every sample's image: path, size and mtime (ns) of each
    file a data info names under a ``*path`` key, and the bytes of
    in-memory arrays (one ``stat`` per sample, no reading)."""
    hasher = hashlib.sha256()
    for i in range(len(dataset)):
        for key, value in sorted(dataset.get_data_info(i).items(),
                                 key=lambda kv: kv[0]):
            if isinstance(value, np.ndarray):
                hasher.update(f'{i}|{key}|{value.dtype}|{value.shape}'
                              .encode())
                hasher.update(np.ascontiguousarray(value).tobytes())
            elif key.endswith('path'):
                stamp = _file_stamp(value)
                hasher.update(f'{i}|{key}|{stamp}'.encode())
    return hasher.hexdigest()


def preprocessor_fingerprint(preprocessor: Any) -> Dict[str, str]:
    """What a data preprocessor does to an image: its output on a fixed
    probe (channels differ, so mean / std / ``to_rgb`` all show)."""
    probe = (torch.arange(3 * 4 * 4, dtype=torch.uint8) * 5).view(3, 4, 4)
    with torch.no_grad():
        out = preprocessor(dict(inputs=[probe], data_samples=None),
                           False)['inputs']
    values = out.detach().float().cpu().mul(1e4).round().to(torch.int64)
    return dict(type=type(preprocessor).__name__,
                probe=hashlib.sha256(values.numpy().tobytes()).hexdigest())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_tmp_files(cache_dir: str,
                           logger: Optional[MMLogger] = None) -> List[str]:
    """Remove temporary cache files left by dead processes of this host
    (a kill during a write); returns their paths."""
    if not osp.isdir(cache_dir):
        return []
    host, removed = socket.gethostname(), []
    for name in sorted(os.listdir(cache_dir)):
        match = _TMP_NAME.match(name)
        if match is None or match.group(2) not in (None, host):
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        path = osp.join(cache_dir, name)
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
            removed.append(path)
            print_log(f'SoftLabelCacheHook: removed {path}, left by a '
                      f'process that died while writing it.', logger=logger,
                      level=logging.WARNING)
    return removed


class _PipelineView(Dataset):
    """Samples ``indices`` of ``dataset`` through another pipeline."""

    def __init__(self, dataset: Any, pipeline: Compose,
                 indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.pipeline = pipeline
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        idx = self.indices[i]
        try:
            data = self.pipeline(self.dataset.get_data_info(idx))
        except CorruptImageError as err:
            if not getattr(self.dataset, 'skip_corrupt', False):
                raise
            # Training never yields a skipped file (the dataset retries with
            # another index), so its row is never looked up: fill it from a
            # neighbour so the pass keeps one row per sample_idx.
            print_log(f'soft labels: {err.path} is corrupt; its row (never '
                      f'used in training) is filled from a neighbour.',
                      logger='current', level=logging.WARNING)
            corrupt = getattr(self.dataset, 'corrupt_indices', None)
            if isinstance(corrupt, set):
                corrupt.add(idx)
            return self[(i + 1) % len(self.indices)]
        if data is None:
            raise RuntimeError(f'the soft-label pipeline dropped sample '
                               f'{idx}; it must keep every sample.')
        return data


def find_pipeline(cfg: Any) -> Optional[list]:
    """The test (else val) pipeline of a config, searched recursively."""

    def search(node: Any) -> Optional[list]:
        if isinstance(node, dict):
            if isinstance(node.get('pipeline'), (list, tuple)):
                return list(node['pipeline'])
            for key in ('dataset', 'datasets'):
                if key in node:
                    found = search(node[key])
                    if found is not None:
                        return found
            # named sets of the multi-set loops: dict(id_val=dict(dataset=..))
            for value in node.values():
                if isinstance(value, dict) and 'dataset' in value:
                    found = search(value)
                    if found is not None:
                        return found
        elif isinstance(node, (list, tuple)):
            for item in node:
                found = search(item)
                if found is not None:
                    return found
        return None

    for field in ('test_dataloader', 'val_dataloader'):
        found = search(cfg.get(field)) if cfg is not None else None
        if found is not None:
            return found
    return None


def _unwrap_dataset(dataset: Any) -> Any:
    names = type(dataset).__name__
    if hasattr(dataset, 'datasets') or names == 'ConcatDataset':
        raise TypeError(
            f'SoftLabelCacheHook: the train dataset is a {names}; its '
            f'sample indices are not unique across the parts. Train on one '
            f'dataset (or merge the annotation lists into one).')
    return dataset


@HOOKS.register_module()
class SoftLabelCacheHook(Hook):
    """Compute or load the p_c table before training (see module doc).

    Args:
        pipeline: test-time pipeline of the pass; default the
            ``test_dataloader`` (else ``val_dataloader``) pipeline of the
            config.
        cache_dir: folder of the cached tables; default
            ``<work_dir>/../.soft_label_cache``.
        batch_size: images per teacher forward.
        num_workers: data-loading workers of the pass.
        dtype: storage dtype of the dense table, ``'float32'`` or
            ``'float16'`` (halves memory and disk for large datasets such as
            ImageNet: the table stays float16 in memory, looked-up rows are
            float32). ``soft_labels.storage='memmap'`` is always float16.
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
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.dtype = getattr(torch, dtype)
        #: Number of tables computed (not loaded) by this hook.
        self.num_computed = 0
        #: 'computed' or 'cache' after the last call; None if skipped.
        self.last_source: Optional[str] = None
        self.last_path: Optional[str] = None

    # -------------------------------------------------------------- hook
    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        cache_dir = self.cache_dir or osp.join(
            osp.dirname(osp.abspath(runner.work_dir)), '.soft_label_cache')
        table = self.load_or_compute(
            model, runner.train_dataloader.dataset,
            self.pipeline or find_pipeline(runner.cfg), cache_dir,
            runner.logger)
        if table is None:
            runner.logger.info(
                'SoftLabelCacheHook: nothing to do (wrm_weight = 0 or soft '
                "labels computed online).")

    def load_or_compute(self, model: Any, dataset: Any,
                        pipeline: Optional[List[dict]], cache_dir: str,
                        logger: Optional[MMLogger] = None
                        ) -> Optional[torch.Tensor]:
        """Fill the p_c table of ``model``'s soft-label component from the
        cache or a pass; returns it (None when the model needs none)."""
        component = getattr(model, 'soft_labels', None)
        if not callable(getattr(component, 'fill_table', None)):
            raise TypeError(f'SoftLabelCacheHook needs a model whose '
                            f'soft_labels component has fill_table() (e.g. '
                            f'DRMClassifier), got {type(model).__name__}.')

        def make_table(fingerprint: dict,
                       label_fn: Callable[[torch.Tensor], torch.Tensor],
                       finalize: Optional[Callable] = None) -> torch.Tensor:
            if pipeline is None:
                raise ValueError(
                    'SoftLabelCacheHook: no test/val pipeline in the config; '
                    'pass pipeline=[...] (the test-time transforms) to the '
                    'hook.')
            storage = (getattr(component, 'storage', 'dense'),
                       getattr(component, 'topk', None))
            return self._table(fingerprint, label_fn,
                               model.data_preprocessor, dataset, pipeline,
                               cache_dir, logger, storage, finalize)

        self.last_source = None
        return component.fill_table(make_table)

    # -------------------------------------------------------------- work
    def cache_key(self, fingerprint: dict, dataset: Any,
                  pipeline: List[dict], preprocessor: Any,
                  storage: tuple = ('dense', None)) -> Dict[str, Any]:
        """Everything that determines the table (hashed into the name)."""
        extra = {} if storage[0] == 'dense' else dict(storage=storage[0],
                                                      topk=storage[1])
        return dict(version=CACHE_VERSION, **extra,
                    dataset=dataset_fingerprint(dataset),
                    images=image_stamps(dataset),
                    preprocessor=preprocessor_fingerprint(preprocessor),
                    soft_labels=fingerprint,
                    pipeline=pipeline,
                    dtype=str(self.dtype))

    def _table(self, fingerprint: dict,
               label_fn: Callable[[torch.Tensor], torch.Tensor],
               preprocessor: Any, dataset: Any, pipeline: List[dict],
               cache_dir: str, logger: Optional[MMLogger],
               storage: tuple = ('dense', None),
               finalize: Optional[Callable] = None):
        dataset = _unwrap_dataset(dataset)
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        expected = (len(dataset), int(fingerprint['num_classes']))
        shared: list = [None, None, None]
        if mm_dist.is_main_process():
            remove_stale_tmp_files(cache_dir, logger)
            key = self.cache_key(fingerprint, dataset, pipeline,
                                 preprocessor, storage)
            suffix = '.pt' if storage[0] == 'dense' else '.npy'
            path = osp.join(cache_dir,
                            f'soft_labels_{_digest(key)[:24]}{suffix}')
            valid = self._valid_cache(path, expected, logger)
            shared = [path, valid,
                      json.dumps(key, sort_keys=True, default=str)]
        mm_dist.broadcast_object_list(shared)
        path, cached, key_text = shared
        self.last_path = path
        if storage[0] == 'memmap':
            return self._file_table(cached, path, expected, storage[1],
                                    label_fn, preprocessor, dataset,
                                    pipeline, logger)
        if cached:
            table = torch.load(path, map_location='cpu',
                               weights_only=True)['soft_labels']
            self.last_source = 'cache'
            print_log(f'SoftLabelCacheHook: loaded soft labels {expected} '
                      f'from cache {path}', logger=logger)
            return table
        print_log(f'SoftLabelCacheHook: computing soft labels for '
                  f'{expected[0]} samples ({expected[1]} classes) -> {path}',
                  logger=logger)
        table = self.compute(label_fn, preprocessor, dataset, pipeline,
                             expected[1], finalize=finalize).to(self.dtype)
        self.num_computed += 1
        self.last_source = 'computed'
        if mm_dist.is_main_process():
            self._write(table, key_text, path, logger)
        mm_dist.barrier()
        return table

    # -------------------------------------------------------------- memmap
    def _file_table(self, cached: bool, path: str, expected: tuple,
                    topk: Optional[int], label_fn: Callable, preprocessor,
                    dataset, pipeline: List[dict],
                    logger: Optional[MMLogger]):
        """The memory-mapped table: computed into one file by all ranks
        (unless cached), then mapped read-only by every rank."""
        if not cached:
            print_log(f'SoftLabelCacheHook: computing soft labels for '
                      f'{expected[0]} samples ({expected[1]} classes, '
                      f'float16 memmap{f", top-{topk}" if topk else ""}) -> '
                      f'{path}', logger=logger)
            tmp = [f'{path}.tmp{os.getpid()}.{socket.gethostname()}']
            mm_dist.broadcast_object_list(tmp)
            self._fill_file(tmp[0], path, expected, topk, label_fn,
                            preprocessor, dataset, pipeline)
            self.num_computed += 1
            self.last_source = 'computed'
        else:
            self.last_source = 'cache'
            print_log(f'SoftLabelCacheHook: mapping soft labels {expected} '
                      f'from cache {path}', logger=logger)
        table = open_table(path, expected[1])
        table.validated = True  # every row checked on rank 0 (load / pass)
        if isinstance(table, TopKTable):
            print_log(f'SoftLabelCacheHook: top-{table.k} soft labels; mean '
                      f'p_c mass outside the top {table.k}: '
                      f'{table.mean_rest():.4f} (renormalised away)',
                      logger=logger)
        return table

    def _fill_file(self, tmp: str, path: str, expected: tuple,
                   topk: Optional[int], label_fn: Callable, preprocessor,
                   dataset, pipeline: List[dict]) -> None:
        """Rank 0 creates ``tmp``, every rank writes its rows, rank 0
        validates and renames it; ``tmp`` is removed on any error."""
        main = mm_dist.is_main_process()
        try:
            if main:
                os.makedirs(osp.dirname(path), exist_ok=True)
                create_table_file(tmp, expected[0], expected[1], topk)
            mm_dist.barrier()
            self.compute(label_fn, preprocessor, dataset, pipeline,
                         expected[1],
                         sink=lambda start, probs: write_rows(
                             tmp, start, probs, topk))
            mm_dist.barrier()
            if main:
                problem = chunked_problem(open_table(tmp, expected[1]),
                                          expected[1], table_problem)
                if problem is not None:
                    raise ValueError(f'SoftLabelCacheHook: the computed '
                                     f'soft-label table has {problem}.')
                os.replace(tmp, path)
            mm_dist.barrier()
        except BaseException:
            if main:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
            raise

    @staticmethod
    def _write(table: torch.Tensor, key_text: str, path: str,
               logger: Optional[MMLogger]) -> None:
        """Write through a temporary file; remove it on any error, and go
        on without the cache file when the disk refuses it."""
        tmp = f'{path}.tmp{os.getpid()}.{socket.gethostname()}'
        try:
            os.makedirs(osp.dirname(path), exist_ok=True)
            torch.save(dict(soft_labels=table, key=key_text), tmp)
            os.replace(tmp, path)
        except BaseException as err:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            if not isinstance(err, OSError):
                raise
            print_log(f'SoftLabelCacheHook: could not write the cache {path} '
                      f'({err}); training goes on with the table in memory.',
                      logger=logger, level=logging.WARNING)

    @staticmethod
    def _valid_cache(path: str, expected: tuple,
                     logger: Optional[MMLogger]) -> bool:
        """Whether a cache file (``.pt`` dense table or ``.npy`` table
        file) holds a p_c table of ``expected`` shape (checked in chunks of
        rows); a bad one is refused with a warning."""
        if not osp.isfile(path):
            return False
        try:
            table = (torch.load(path, map_location='cpu',
                                weights_only=True)['soft_labels']
                     if path.endswith('.pt') else
                     open_table(path, expected[1]))
            problem = (f'shape {tuple(table.shape)} instead of {expected}'
                       if tuple(table.shape) != tuple(expected) else
                       chunked_problem(table, expected[1], table_problem))
            del table
        except Exception as err:  # corrupt / foreign file: recompute
            problem = f'unreadable ({type(err).__name__}: {err})'
        if problem is None:
            return True
        print_log(f'SoftLabelCacheHook: refusing the cache {path}: '
                  f'{problem}; recomputing.', logger=logger,
                  level=logging.WARNING)
        return False

    @torch.no_grad()
    def compute(self, label_fn: Callable[[torch.Tensor], torch.Tensor],
                preprocessor: Any, dataset: Any, pipeline: List[dict],
                num_classes: int,
                sink: Optional[Callable[[int, torch.Tensor], None]] = None,
                finalize: Optional[Callable[[torch.Tensor], torch.Tensor]]
                = None) -> Optional[torch.Tensor]:
        """One teacher pass over the dataset, sharded across ranks; with
        ``sink(first_row, probs)`` each batch goes there (nothing is
        gathered or returned); ``finalize`` (called on every rank, may
        communicate) turns each rank's rows into p_c before the gather
        (per-class min-max; dense tables only)."""
        rank, world = mm_dist.get_dist_info()
        total = len(dataset)
        start, stop = shard_bounds(total, rank, world)
        transforms = Compose([
            build_in_scope(TRANSFORMS, t) if isinstance(t, dict) else t
            for t in pipeline
        ])
        loader = DataLoader(_PipelineView(dataset, transforms,
                                          range(start, stop)),
                            batch_size=self.batch_size,
                            num_workers=self.num_workers,
                            shuffle=False,
                            collate_fn=pseudo_collate)
        bar = ProgressBar(stop - start) if rank == 0 else None
        parts: List[torch.Tensor] = []
        row = start
        for batch in loader:
            probs = label_fn(preprocessor(batch, False)['inputs'])
            if sink is not None:
                sink(row, probs)
                row += probs.size(0)
            else:
                parts.append(probs.float().cpu())
            if bar is not None:
                bar.update(probs.size(0))
        if bar is not None:
            bar.file.write('\n')
        if sink is not None:
            return None
        shard = (torch.cat(parts) if parts else torch.zeros(0, num_classes))
        if finalize is not None:
            shard = finalize(shard)
        if world == 1:
            return shard
        per_rank = -(-total // world)
        padded = shard.new_zeros(per_rank, num_classes)
        padded[:shard.size(0)] = shard
        gathered = mm_dist.all_gather(padded)
        return torch.cat([g.cpu() for g in gathered])[:total]
