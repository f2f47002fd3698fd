"""The cache key of a p_c table: everything that determines it.

A stored table is reused only when every input of p_c is the same:

* the dataset: class, root, split, annotation / metadata files (path,
  size, mtime), length and a digest of the data list;
* the images: a digest of the *bytes* of every sample's file (a file
  replaced by another of the same size with its mtime restored changes
  the key; ``docs/performance.md`` states the cost), and the bytes of
  in-memory images;
* the data preprocessor: its output on a fixed probe image (mean, std,
  ``to_rgb`` and anything else it does);
* the soft-label component's fingerprint (teacher architecture and
  weights, descriptions, normalisation, τ);
* the pass's pipeline and the table's storage (dense dtype, or memmap and
  top-k).

The file name is a digest of the key; the key itself is stored with the
file and compared on load (:mod:`.table_cache`).
"""
import hashlib
import json
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.utils import ProgressBar

#: Bumped when the key or the file layout changes (old files are ignored).
CACHE_VERSION = 3
_DATASET_ATTRS = ('data_root', 'split', 'ann_file', 'metadata_file',
                  'data_prefix', 'split_scheme', 'version')
#: Threads that read and hash image files (I/O bound; hashlib releases the
#: GIL on large buffers).
HASH_THREADS = 8
#: From this many image files on, hashing them shows a progress bar.
PROGRESS_FILES = 10000


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(key_text(obj).encode()).hexdigest()


def key_text(obj: Any) -> str:
    """Canonical JSON of a key (stored with the table)."""
    return json.dumps(obj, sort_keys=True, default=str)


def file_stamp(path: Any) -> Optional[Dict[str, Any]]:
    """Path, size and mtime of a file (None if ``path`` is no file)."""
    if isinstance(path, (str, os.PathLike)) and osp.isfile(path):
        stat = os.stat(path)
        return dict(path=osp.abspath(path), size=stat.st_size,
                    mtime_ns=stat.st_mtime_ns)
    return None


def dataset_fingerprint(dataset: Any) -> Dict[str, Any]:
    """What identifies the samples of a dataset."""
    info: Dict[str, Any] = dict(type=type(dataset).__name__,
                                length=len(dataset))
    for attr in _DATASET_ATTRS:
        if hasattr(dataset, attr):
            value = getattr(dataset, attr)
            info[attr] = value if isinstance(
                value, (int, float, str, bool, type(None))) else str(value)
            stamp = file_stamp(value)
            if stamp is not None:
                info[attr + '_file'] = stamp
    folder = getattr(dataset, 'dataset_dir', None)
    for name in getattr(dataset, 'REQUIRED_FILES', ()) if folder else ():
        info[f'file:{name}'] = file_stamp(osp.join(folder, name))
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


def _file_digest(path: str) -> str:
    with open(path, 'rb') as handle:
        return hashlib.file_digest(handle, 'sha256').hexdigest()


def image_digest(dataset: Any) -> str:
    """Digest of every sample's image: the bytes of each file a data info
    names under a ``*path`` key (read by :data:`HASH_THREADS` threads, with
    a progress bar for large sets) and the bytes of in-memory arrays. A
    missing file counts as ``None`` (the pass reports it)."""
    entries: List[tuple] = []
    for i in range(len(dataset)):
        for key, value in sorted(dataset.get_data_info(i).items(),
                                 key=lambda kv: kv[0]):
            if isinstance(value, np.ndarray):
                entries.append((i, key, value))
            elif key.endswith('path'):
                entries.append((i, key, value if isinstance(
                    value, (str, os.PathLike)) and osp.isfile(value)
                                else None))
    files = [e[2] for e in entries if isinstance(e[2], (str, os.PathLike))]
    bar = ProgressBar(len(files)) if len(files) >= PROGRESS_FILES else None
    digests = {}
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        for path, value in zip(files, pool.map(_file_digest, files)):
            digests[path] = value
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.file.write('\n')
    hasher = hashlib.sha256()
    for i, key, value in entries:
        if isinstance(value, np.ndarray):
            hasher.update(f'{i}|{key}|{value.dtype}|{value.shape}'.encode())
            hasher.update(np.ascontiguousarray(value).tobytes())
        else:
            hasher.update(f'{i}|{key}|{digests.get(value)}'.encode())
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


def cache_key(fingerprint: dict, dataset: Any, pipeline: List[dict],
              preprocessor: Any, storage: str, topk: Optional[int],
              dtype: torch.dtype) -> Dict[str, Any]:
    """The key of the table of ``dataset`` under the component whose
    :meth:`~.CoreSoftLabels.start_pass` gave ``fingerprint``."""
    extra = {} if storage == 'dense' else dict(storage=storage, topk=topk)
    return dict(version=CACHE_VERSION, **extra,
                dataset=dataset_fingerprint(dataset),
                images=image_digest(dataset),
                preprocessor=preprocessor_fingerprint(preprocessor),
                soft_labels=fingerprint,
                pipeline=pipeline,
                dtype=str(dtype))
