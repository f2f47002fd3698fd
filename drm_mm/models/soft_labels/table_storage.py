"""Storage of the p_c table: in memory, or a float16 memory-mapped ``.npy``
file that every rank of a node opens read-only (the page cache holds it
once), optionally sparse (the k largest probabilities of each row).

Why: ImageNet's 1.28 M x 1000 table is 5.1 GB of float32 per rank in
memory; memory-mapped it costs each rank only the rows of its batches.

Top-k rows keep the k largest p_c values *renormalised to sum to 1* (the
WRM target stays a distribution; the mass dropped is stored per row as
``rest`` and its mean is logged). Files are written by the sharded pass of
``SoftLabelCacheHook`` through the functions here.

A mapped file is read for the whole run, so each mapped table remembers
the identity of its file (device, inode, size, mtime, ctime) and
:func:`file_change` tells whether the file was rewritten since: another
job writing into it would otherwise change the training targets live.
"""
import os
from typing import Optional, Tuple

import numpy as np
import torch

STORAGES = ('dense', 'memmap')
#: Rows per chunk when a file is validated (bounds the memory of a check).
CHECK_ROWS = 8192


def check_storage(storage: str, topk: Optional[int]) -> Optional[int]:
    """Validate ``storage`` / ``topk``; returns topk as int (or None)."""
    if storage not in STORAGES:
        raise ValueError(f'soft_labels.storage={storage!r}; choose from '
                         f'{STORAGES}.')
    if topk is None:
        return None
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f'soft_labels.topk must be None or an int >= 1, '
                         f'got {topk!r}.')
    if storage != 'memmap':
        raise ValueError("soft_labels.topk needs storage='memmap'; set "
                         "soft_labels.storage='memmap' or topk=None.")
    return topk


def file_dtype(topk: Optional[int]) -> np.dtype:
    """float16 rows, or records of k probabilities, k indices and rest."""
    if topk is None:
        return np.dtype('<f2')
    return np.dtype([('p', '<f2', (topk, )), ('i', '<i4', (topk, )),
                     ('rest', '<f4')])


def create_table_file(path: str, num_rows: int, num_classes: int,
                      topk: Optional[int]) -> None:
    """Create the (zero) file and reserve its blocks (a full disk fails
    here with OSError, not later in a write through the mapping)."""
    shape = (num_rows, ) if topk else (num_rows, num_classes)
    array = np.lib.format.open_memmap(path, mode='w+',
                                      dtype=file_dtype(topk), shape=shape)
    offset, size = array.offset, array.nbytes
    del array
    if size and hasattr(os, 'posix_fallocate'):
        with open(path, 'r+b') as handle:
            os.posix_fallocate(handle.fileno(), offset, size)


def write_rows(path: str, start: int, probs: torch.Tensor,
               topk: Optional[int]) -> None:
    """Write p_c rows ``start .. start + len(probs)`` into the file."""
    probs = probs.detach().float().cpu()
    array = np.lib.format.open_memmap(path, mode='r+')
    stop = start + probs.size(0)
    if topk is None:
        array[start:stop] = probs.numpy().astype(np.float16)
    else:
        values, index = probs.topk(min(topk, probs.size(1)), dim=1)
        kept = values.sum(dim=1, keepdim=True)
        records = np.zeros(probs.size(0), dtype=array.dtype)
        records['p'][:, :values.size(1)] = (
            values / kept.clamp_min(1e-12)).numpy().astype(np.float16)
        records['i'][:, :values.size(1)] = index.numpy()
        records['rest'] = (1 - kept[:, 0]).clamp_min(0).numpy()
        array[start:stop] = records
    array.flush()
    del array


def file_identity(path: str) -> Tuple[int, ...]:
    """What changes when a file is rewritten, in place or by a rename:
    device, inode, size, mtime and ctime (ns; ctime cannot be set back)."""
    stat = os.stat(path)
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
            stat.st_ctime_ns)


def file_change(table) -> Optional[str]:
    """Why the file of a mapped table is no longer the one mapped (None if
    unchanged, or for an in-memory tensor)."""
    path = getattr(table, 'path', None)
    if path is None:
        return None
    try:
        identity = file_identity(path)
    except OSError as err:
        return f'{path} is gone ({err.strerror})'
    if identity != table.identity:
        return f'{path} was rewritten after it was checked'
    return None


class MappedTable:
    """What both mapped tables share: the tensor-like ``shape`` /
    ``size()`` / ``len()`` the soft-label lookup reads, and the file they
    map."""

    def __init__(self) -> None:
        #: Set by whoever checked every row (the cache hook, on rank 0):
        #: installing it then checks only the shape.
        self.validated = False
        #: The mapped file and its :func:`file_identity` (see open_table).
        self.path: Optional[str] = None
        self.identity: Optional[Tuple[int, ...]] = None

    @property
    def shape(self) -> Tuple[int, int]:
        """``(rows, classes)``."""
        raise NotImplementedError

    def size(self, dim: Optional[int] = None):
        return self.shape if dim is None else self.shape[dim]

    def __len__(self) -> int:
        return self.shape[0]


class TopKTable(MappedTable):
    """Sparse p_c: per row the k largest values (renormalised) and their
    class indices; lookups give dense float32 rows."""

    def __init__(self, records: np.ndarray, num_classes: int) -> None:
        super().__init__()
        self.records = records
        self.num_classes = int(num_classes)
        self.k = int(records.dtype['p'].shape[0])

    @property
    def shape(self) -> Tuple[int, int]:
        return (len(self.records), self.num_classes)

    def rows(self, index: torch.Tensor,
             device: torch.device) -> torch.Tensor:
        """Dense float32 rows ``index`` on ``device``."""
        chosen = self.records[index.numpy()]
        values = torch.from_numpy(chosen['p'].astype(np.float32))
        classes = torch.from_numpy(chosen['i'].astype(np.int64))
        out = torch.zeros(len(chosen), self.num_classes, device=device)
        return out.scatter_add_(1, classes.to(device), values.to(device))

    def mean_rest(self) -> float:
        """Mean p_c mass outside the top k (before renormalising)."""
        total = 0.0
        for start in range(0, len(self.records), CHECK_ROWS):
            total += float(np.asarray(
                self.records['rest'][start:start + CHECK_ROWS],
                dtype=np.float64).sum())
        return total / max(len(self.records), 1)


class MemmapTable(MappedTable):
    """Dense float16 p_c in a read-only memory-mapped file; lookups read
    only the batch's rows."""

    def __init__(self, array: np.ndarray) -> None:
        super().__init__()
        self.array = array

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16

    def rows(self, index: torch.Tensor,
             device: torch.device) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(
            self.array[index.numpy()])).to(device).float()


def open_table(path: str, num_classes: int,
               identity: Optional[Tuple[int, ...]] = None):
    """The table of a file, mapped read-only (a MemmapTable or a
    TopKTable). ``identity``: the :func:`file_identity` the file had when
    its contents were checked; a file that changed since is refused."""
    array = np.load(path, mmap_mode='r', allow_pickle=False)
    table = (TopKTable(array, num_classes) if array.dtype.names else
             MemmapTable(array))
    table.path, table.identity = path, file_identity(path)
    if identity is not None and tuple(identity) != table.identity:
        raise RuntimeError(f'soft labels: {path} was rewritten after it was '
                           f'checked; another job writes into the cache '
                           f'folder: give this run its own cache_dir.')
    return table


def lookup(table, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """float32 rows ``index`` of any stored table, on ``device``."""
    if isinstance(table, MappedTable):
        return table.rows(index, device)
    return table[index].to(device, non_blocking=True).float()


def chunked_problem(table, num_classes: int, problem_fn) -> Optional[str]:
    """``problem_fn(rows, num_classes)`` over chunks of rows of a tensor or
    stored table (memory bounded by CHECK_ROWS rows); for a TopKTable also
    indices in range and rest in [0, 1]. A stored table marked
    ``validated`` gets its shape checked only."""
    if getattr(table, 'validated', False):
        shape = tuple(table.shape)
        return (None if len(shape) == 2 and shape[1] == num_classes else
                f'shape {shape} instead of (N, {num_classes})')
    if isinstance(table, TopKTable):
        for start in range(0, len(table), CHECK_ROWS):
            chunk = table.records[start:start + CHECK_ROWS]
            index = np.asarray(chunk['i'])
            if index.size and (index.min() < 0
                               or index.max() >= num_classes):
                return (f'class indices outside [0, {num_classes}) in '
                        f'rows {start}..{start + len(chunk) - 1}')
            # a row names min(k, C) distinct classes (k > C: zero padding)
            ordered = np.sort(index[:, :min(table.k, num_classes)], axis=1)
            if ordered.size and (ordered[:, 1:] == ordered[:, :-1]).any():
                return (f'duplicate class indices in a row (rows '
                        f'{start}..{start + len(chunk) - 1})')
            rest = np.asarray(chunk['rest'], dtype=np.float64)
            if rest.size and not (np.isfinite(rest).all() and
                                  rest.min() >= 0 and rest.max() <= 1):
                return 'mass outside the top k not in [0, 1]'
            problem = problem_fn(
                torch.from_numpy(np.asarray(chunk['p'], np.float32)),
                table.k)
            if problem is not None:
                return problem
        return None
    if isinstance(table, MemmapTable):
        if table.array.ndim != 2 or table.array.shape[1] != num_classes:
            return (f'shape {tuple(table.array.shape)} instead of '
                    f'(N, {num_classes})')
        for start in range(0, len(table), CHECK_ROWS):
            problem = problem_fn(torch.from_numpy(np.asarray(
                table.array[start:start + CHECK_ROWS], np.float32)),
                num_classes)
            if problem is not None:
                return problem
        return None
    if table.dim() != 2:
        return problem_fn(table, num_classes)
    for start in range(0, max(table.size(0), 1), CHECK_ROWS):
        problem = problem_fn(table[start:start + CHECK_ROWS], num_classes)
        if problem is not None:
            return problem
    return None
