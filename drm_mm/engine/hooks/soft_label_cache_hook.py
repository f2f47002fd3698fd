"""``SoftLabelCacheHook``: compute the core-based soft labels p_c once,
store them on disk, reuse them on the next run and on resume.

Before training (also of a resumed run) the hook asks the classifier for
its frozen pre-trained teacher CLIP, runs it over the whole training set
with the *test-time* pipeline and hands the table ``p_c[sample_idx]`` to
``model.set_soft_labels``. The file is named by a hash of everything that
determines p_c:

* dataset identity: class, root, split, annotation / metadata files (path,
  size, mtime), length and a digest of the data list;
* the teacher: architecture config and a digest of its weights;
* the class names, concept descriptions, normalisation and τ;
* the test pipeline.

Cache folder (``cache_dir``): default ``<work_dir>/../.soft_label_cache``,
i.e. shared by every run under the same ``work_dirs/``. It must be on a
file system that all nodes see in multi-node runs. In a distributed run the
pass is sharded: each rank computes a contiguous slice of the samples and
the slices are all-gathered; rank 0 writes the file and shows a progress
bar with an ETA.
"""
import hashlib
import json
import logging
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine import dist as mm_dist
from mmengine.dataset import Compose, pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import MMLogger, print_log
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader, Dataset

from drm_mm.datasets.transforms.load_image_draft import CorruptImageError
from drm_mm.registry import HOOKS, TRANSFORMS, build_in_scope

CACHE_VERSION = 1
_DATASET_ATTRS = ('data_root', 'split', 'ann_file', 'metadata_file',
                  'data_prefix', 'split_scheme', 'version')
_IGNORED_CLIP_KEYS = ('frozen', 'grad_checkpointing', 'cache_dir',
                      'init_cfg')


def _digest(obj: Any) -> str:
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """Digest of a module's state dict (names, dtypes, shapes, values)."""
    hasher = hashlib.blake2b(digest_size=20)
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        hasher.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}'.encode())
        hasher.update(tensor.view(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b'')
    return hasher.hexdigest()


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
        dtype: storage dtype, ``'float32'`` or ``'float16'`` (halves memory
            and disk for large datasets such as ImageNet: N x C values).
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
        if not hasattr(model, 'set_soft_labels'):
            raise TypeError(f'SoftLabelCacheHook needs a DRMClassifier, got '
                            f'{type(model).__name__}.')
        if not model.needs_soft_labels or model.soft_label_source != 'cache':
            self.last_source = None
            runner.logger.info(
                'SoftLabelCacheHook: nothing to do (wrm_weight = 0 or soft '
                "labels computed online).")
            return
        pipeline = self.pipeline or find_pipeline(runner.cfg)
        if pipeline is None:
            raise ValueError(
                'SoftLabelCacheHook: no test/val pipeline in the config; '
                'pass pipeline=[...] (the test-time transforms) to the hook.')
        cache_dir = self.cache_dir or osp.join(
            osp.dirname(osp.abspath(runner.work_dir)), '.soft_label_cache')
        table = self.load_or_compute(model, runner.train_dataloader.dataset,
                                     pipeline, cache_dir, runner.logger)
        model.set_soft_labels(table)

    # -------------------------------------------------------------- work
    def cache_key(self, model: Any, teacher: torch.nn.Module, dataset: Any,
                  pipeline: List[dict]) -> Dict[str, Any]:
        """Everything that determines the table (hashed into the name)."""
        clip_cfg = getattr(model, '_clip_cfg', None) or {}
        clip_cfg = {k: v for k, v in dict(clip_cfg).items()
                    if k not in _IGNORED_CLIP_KEYS}
        return dict(version=CACHE_VERSION,
                    dataset=dataset_fingerprint(dataset),
                    clip=clip_cfg,
                    teacher=weights_digest(teacher),
                    prompts=model.soft_label_fingerprint(),
                    pipeline=pipeline,
                    dtype=str(self.dtype))

    def load_or_compute(self, model: Any, dataset: Any,
                        pipeline: List[dict], cache_dir: str,
                        logger: Optional[MMLogger] = None) -> torch.Tensor:
        """The p_c table ``(len(dataset), C)`` from the cache or a pass."""
        dataset = _unwrap_dataset(dataset)
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        teacher = model.build_teacher()
        key = self.cache_key(model, teacher, dataset, pipeline)
        path = osp.join(cache_dir, f'soft_labels_{_digest(key)[:24]}.pt')
        self.last_path = path
        expected = (len(dataset), model.num_classes)
        flag = [self._readable(path, expected, logger)
                if mm_dist.is_main_process() else None]
        mm_dist.broadcast_object_list(flag)
        if flag[0]:
            table = torch.load(path, map_location='cpu',
                               weights_only=True)['soft_labels']
            self.last_source = 'cache'
            print_log(f'SoftLabelCacheHook: loaded soft labels {expected} '
                      f'from cache {path}', logger=logger)
            return table.float()
        print_log(f'SoftLabelCacheHook: computing soft labels for '
                  f'{expected[0]} samples ({expected[1]} classes) -> {path}',
                  logger=logger)
        table = self.compute(model, teacher, dataset, pipeline)
        self.num_computed += 1
        self.last_source = 'computed'
        if mm_dist.is_main_process():
            os.makedirs(cache_dir, exist_ok=True)
            tmp = f'{path}.tmp{os.getpid()}'
            torch.save(dict(soft_labels=table.to(self.dtype),
                            key=json.dumps(key, sort_keys=True, default=str)),
                       tmp)
            os.replace(tmp, path)
        mm_dist.barrier()
        return table.to(self.dtype).float()

    @staticmethod
    def _readable(path: str, expected: tuple,
                  logger: Optional[MMLogger]) -> bool:
        if not osp.isfile(path):
            return False
        try:
            table = torch.load(path, map_location='cpu',
                               weights_only=True)['soft_labels']
        except Exception as err:  # corrupt / foreign file: recompute
            print_log(f'SoftLabelCacheHook: ignoring unreadable cache '
                      f'{path} ({err}); recomputing.', logger=logger,
                      level=30)
            return False
        if tuple(table.shape) != tuple(expected):
            print_log(f'SoftLabelCacheHook: cache {path} has shape '
                      f'{tuple(table.shape)}, expected {expected}; '
                      'recomputing.', logger=logger, level=30)
            return False
        return True

    @torch.no_grad()
    def compute(self, model: Any, teacher: torch.nn.Module, dataset: Any,
                pipeline: List[dict]) -> torch.Tensor:
        """One teacher pass over the dataset, sharded across ranks."""
        rank, world = mm_dist.get_dist_info()
        total = len(dataset)
        per_rank = -(-total // world)
        start, stop = min(rank * per_rank, total), min((rank + 1) * per_rank,
                                                       total)
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
        was_training = model.training
        model.eval()
        parts: List[torch.Tensor] = []
        try:
            for batch in loader:
                data = model.data_preprocessor(batch, False)
                probs = model.teacher_soft_labels(teacher, data['inputs'])
                parts.append(probs.float().cpu())
                if bar is not None:
                    bar.update(probs.size(0))
        finally:
            model.train(was_training)
        if bar is not None:
            bar.file.write('\n')
        shard = (torch.cat(parts) if parts else torch.zeros(
            0, model.num_classes))
        if world == 1:
            return shard
        padded = shard.new_zeros(per_rank, model.num_classes)
        padded[:shard.size(0)] = shard
        gathered = mm_dist.all_gather(padded)
        return torch.cat([g.cpu() for g in gathered])[:total]
