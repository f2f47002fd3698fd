"""The cache files of p_c tables: dense ``.pt`` and memory-mapped ``.npy``.

A table of key ``K`` lives at ``<cache_dir>/soft_labels_<digest(K)>.pt``
(dense: ``dict(soft_labels=table, key=K, meta=...)``) or ``.npy`` (memmap,
:mod:`.table_storage`, with its ``meta`` in ``<name>.npy.json``). ``meta``
binds the contents to the key: the key's text, τ, normalisation, shape,
dtype, top-k and a sha256 of the table's bytes. A file is used only when
all of them match and every row is a distribution; anything else (another
configuration's file, permuted rows, duplicate top-k indices, a dense table
under a top-k name, a damaged file) is refused with one log line and
recomputed.

Files are written to ``<name>.tmp<PID>.<host>`` and renamed; the temporary
file is removed on any error, and those of dead processes of this host are
removed by :func:`remove_stale_tmp_files`. A dense table that cannot be
written (full disk: ``OSError``, or torch's ``RuntimeError`` from its zip
writer) only costs the cache: training goes on with the table in memory.
"""
import contextlib
import hashlib
import json
import logging
import os
import os.path as osp
import re
import socket
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

from .cache_key import digest, key_text
from .core_soft_labels import table_problem
from .table_storage import (CHECK_ROWS, TopKTable, chunked_problem,
                            create_table_file, file_identity, open_table)

#: ``<cache>.tmp<PID>`` or ``<cache>.tmp<PID>.<host>``
_TMP_NAME = re.compile(
    r'^soft_labels_\w+\.(?:pt|npy|npy\.json)\.tmp(\d+)(?:\.(.+))?$')


def tmp_name(path: str) -> str:
    """The temporary file this process writes ``path`` through."""
    return f'{path}.tmp{os.getpid()}.{socket.gethostname()}'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_tmp_files(cache_dir: str, logger: Any = None) -> List[str]:
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


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _sha256(table) -> str:
    """sha256 of a table's bytes (a tensor, or a mapped file in chunks)."""
    hasher = hashlib.sha256()
    if isinstance(table, torch.Tensor):
        flat = table.detach().cpu().contiguous().view(-1)
        hasher.update(flat.view(torch.uint8).numpy().tobytes()
                      if flat.numel() else b'')
        return hasher.hexdigest()
    array = table.records if isinstance(table, TopKTable) else table.array
    for start in range(0, len(array), CHECK_ROWS):
        hasher.update(np.ascontiguousarray(
            array[start:start + CHECK_ROWS]).tobytes())
    return hasher.hexdigest()


def _key_difference(stored: str, expected: str) -> str:
    """The first fields in which two key texts differ (for a log line)."""

    def flat(node: Any, prefix: str = '') -> Dict[str, Any]:
        if isinstance(node, dict):
            out: Dict[str, Any] = {}
            for k, v in node.items():
                out.update(flat(v, f'{prefix}{k}.'))
            return out
        return {prefix[:-1]: node}

    try:
        old, new = flat(json.loads(stored)), flat(json.loads(expected))
    except (TypeError, ValueError):
        return 'an unreadable key'
    fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ', '.join(f'{k}: {old.get(k)!r} (here {new.get(k)!r})'
                     for k in fields[:3])


class TableCache:
    """One cache file of a p_c table and its checks.

    Args:
        path (str): the file (``.pt`` dense, ``.npy`` memmap).
        key (str): the canonical text of the table's cache key.
        shape (tuple): ``(num_samples, num_classes)`` of the table.
        topk (int, optional): k of a top-k memmap table. Defaults to None.
        meta (dict, optional): readable copies of key fields stored with
            the file (τ, normalisation). Defaults to None.
    """

    def __init__(self, path: str, key: str, shape: Tuple[int, int],
                 topk: Optional[int] = None,
                 meta: Optional[Dict[str, Any]] = None) -> None:
        self.path = path
        self.key = key
        self.shape = tuple(int(s) for s in shape)
        self.topk = topk
        self.meta = dict(meta or {})
        self.dense = path.endswith('.pt')
        #: file_identity of the memmap file when its contents were checked
        self.identity: Optional[Tuple[int, ...]] = None

    @classmethod
    def in_folder(cls, cache_dir: str, key: Dict[str, Any],
                  shape: Tuple[int, int], topk: Optional[int] = None,
                  meta: Optional[Dict[str, Any]] = None) -> 'TableCache':
        """The file of ``key`` in ``cache_dir`` (named by its digest;
        ``.npy`` when the key names memmap storage)."""
        suffix = '.pt' if key.get('storage', 'dense') == 'dense' else '.npy'
        path = osp.join(cache_dir, f'soft_labels_{digest(key)[:24]}{suffix}')
        return cls(path, key_text(key), shape, topk, meta)

    def announce(self, cached: bool, logger: Any = None) -> None:
        """Log whether the table is loaded or computed."""
        kind = 'dense' if self.dense else (
            f'float16 memmap{f", top-{self.topk}" if self.topk else ""}')
        print_log(f'SoftLabelCacheHook: loaded soft labels {self.shape} from '
                  f'cache {self.path}' if cached else
                  f'SoftLabelCacheHook: computing soft labels for '
                  f'{self.shape[0]} samples ({self.shape[1]} classes, '
                  f'{kind}) -> {self.path}', logger=logger)

    @property
    def meta_path(self) -> str:
        """Where a memmap table's meta is stored."""
        return self.path + '.json'

    def _meta(self, table) -> Dict[str, Any]:
        return dict(self.meta, key=self.key, sha256=_sha256(table),
                    shape=list(self.shape), topk=self.topk,
                    dtype=str(getattr(table, 'dtype', 'records')))

    # ------------------------------------------------------------ reading
    def problem(self) -> Optional[str]:
        """Why the file may not be used (None: use it); reads it all."""
        if self.dense:
            stored = torch.load(self.path, map_location='cpu',
                                weights_only=True)
            table, meta = stored['soft_labels'], stored.get('meta')
        else:
            identity = file_identity(self.path)
            table = open_table(self.path, self.shape[1])
            if osp.isfile(self.meta_path):
                with open(self.meta_path, encoding='utf-8') as handle:
                    meta = json.load(handle)
            else:
                meta = None
            if self.topk is not None and not isinstance(table, TopKTable):
                return 'a dense table where a top-k table is expected'
            if self.topk is None and isinstance(table, TopKTable):
                return 'a top-k table where a dense table is expected'
            if isinstance(table, TopKTable) and table.k != self.topk:
                return f'top-{table.k} rows instead of top-{self.topk}'
        if tuple(table.shape) != self.shape:
            return f'shape {tuple(table.shape)} instead of {self.shape}'
        problem = chunked_problem(table, self.shape[1], table_problem)
        if problem is not None:
            return problem
        if not isinstance(meta, dict) or 'sha256' not in meta:
            return 'no stored key and content hash'
        if meta.get('key') != self.key:
            return ('the table of another configuration ('
                    f'{_key_difference(meta.get("key"), self.key)})')
        if meta['sha256'] != _sha256(table):
            return 'contents that do not match its stored hash'
        if not self.dense:
            self.identity = identity
        return None

    def valid(self, logger: Any = None) -> bool:
        """Whether the file exists and passes :meth:`problem`; a bad one is
        refused with one log line."""
        if not osp.isfile(self.path):
            return False
        try:
            problem = self.problem()
        except Exception as err:  # corrupt / foreign file: recompute
            problem = f'unreadable ({type(err).__name__}: {err})'
        if problem is None:
            return True
        print_log(f'SoftLabelCacheHook: refusing the cache {self.path}: '
                  f'{problem}; recomputing.', logger=logger,
                  level=logging.WARNING)
        return False

    def load(self, logger: Any = None):
        """The checked table: a tensor (dense) or a mapped file (for top-k
        the mean p_c mass dropped is logged)."""
        if self.dense:
            return torch.load(self.path, map_location='cpu',
                              weights_only=True)['soft_labels']
        table = open_table(self.path, self.shape[1], self.identity)
        table.validated = True  # every row checked on rank 0
        if isinstance(table, TopKTable):
            print_log(f'SoftLabelCacheHook: top-{table.k} soft labels; mean '
                      f'p_c mass outside the top {table.k}: '
                      f'{table.mean_rest():.4f} (renormalised away)',
                      logger=logger)
        return table

    # ------------------------------------------------------------ writing
    def save_dense(self, table: torch.Tensor, logger: Any = None) -> None:
        """Write a dense table; a disk that refuses it costs only the
        cache (one warning, no file left)."""
        tmp = tmp_name(self.path)
        try:
            os.makedirs(osp.dirname(self.path), exist_ok=True)
            torch.save(dict(soft_labels=table, key=self.key,
                            meta=self._meta(table)), tmp)
            os.replace(tmp, self.path)
        except (OSError, RuntimeError) as err:
            _remove(tmp)
            reason = str(err).strip().splitlines()[0] if str(err) else ''
            print_log(f'SoftLabelCacheHook: could not write the cache '
                      f'{self.path} ({type(err).__name__}: {reason}); '
                      f'training goes on with the table in memory.',
                      logger=logger, level=logging.WARNING)
        except BaseException:
            _remove(tmp)
            raise

    def create_file(self) -> str:
        """Create the zero memmap file of the table (blocks reserved: a
        full disk fails here); returns its temporary path."""
        tmp = tmp_name(self.path)
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        try:
            create_table_file(tmp, self.shape[0], self.shape[1], self.topk)
        except BaseException:
            _remove(tmp)
            raise
        return tmp

    def commit_file(self, tmp: str) -> None:
        """Check the written rows of ``tmp``, store the meta, rename."""
        table = open_table(tmp, self.shape[1])
        problem = chunked_problem(table, self.shape[1], table_problem)
        if problem is not None:
            raise ValueError(f'SoftLabelCacheHook: the computed soft-label '
                             f'table has {problem}.')
        meta_tmp = tmp_name(self.meta_path)
        try:
            with open(meta_tmp, 'w', encoding='utf-8') as handle:
                json.dump(self._meta(table), handle)
            os.replace(meta_tmp, self.meta_path)
        except BaseException:
            _remove(meta_tmp)
            raise
        del table
        os.replace(tmp, self.path)
        self.identity = file_identity(self.path)

    @staticmethod
    def discard(tmp: str) -> None:
        """Remove a temporary file (after an error)."""
        _remove(tmp)
