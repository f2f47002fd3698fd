"""A fixed held-out part of ImageNet's training set, for model selection.

ImageNet ``val`` is the reported ID test set, so checkpoints are selected
on images held out of ``train`` instead: per class, ``per_class`` images
drawn from the class's sorted file list with a generator seeded by
``"<seed>/<wnid>"`` (independent of the other classes and of the file
system's listing order). The draw is written once to a split file (one
``<wnid>/<file>`` per line under a header naming ``per_class`` and
``seed``) and read from it afterwards, so the split stays fixed even if
files are later added to the folder.
"""
from __future__ import annotations

import os
import os.path as osp
import random
from typing import FrozenSet, Optional, Sequence

from drm_mm.datasets.imagenet_base import list_images

HEADER = '# drm_mm ImageNet train hold-out: per_class={k} seed={s}'


def default_holdout_file(data_root: str, per_class: int, seed: int) -> str:
    """``<data_root>/train_holdout_<k>pc_seed<s>.txt``."""
    return osp.join(data_root, f'train_holdout_{per_class}pc_seed{seed}.txt')


def draw_holdout(train_root: str, wnids: Sequence[str], per_class: int,
                 seed: int) -> list:
    """``<wnid>/<file>`` entries held out: per class, ``per_class`` of its
    sorted images drawn with ``random.Random(f'{seed}/{wnid}')``; classes
    without a folder under ``train_root`` are skipped."""
    entries = []
    for wnid in wnids:
        folder = osp.join(train_root, wnid)
        if not osp.isdir(folder):
            continue
        files = list_images(folder)
        if len(files) <= per_class:
            raise ValueError(
                f'ImageNet hold-out: {folder} has {len(files)} image(s), not '
                f'more than holdout_per_class={per_class}; lower '
                f'holdout_per_class so training keeps images of every class.')
        picked = random.Random(f'{seed}/{wnid}').sample(files, per_class)
        entries.extend(f'{wnid}/{name}' for name in sorted(picked))
    return entries


def read_holdout_file(path: str, per_class: int, seed: int) -> FrozenSet[str]:
    """Entries of a split file written by :func:`load_or_write_holdout`."""
    with open(path, encoding='utf-8') as f:
        lines = [line.rstrip('\n') for line in f]
    expected = HEADER.format(k=per_class, s=seed)
    if not lines or lines[0] != expected:
        raise ValueError(
            f'{path}: first line must be {expected!r} (the split file of '
            f'holdout_per_class={per_class}, holdout_seed={seed}); got '
            f'{lines[0] if lines else "an empty file"!r}. Point '
            f'holdout_file at the right file or delete it to redraw.')
    return frozenset(line for line in lines[1:] if line.strip())


def load_or_write_holdout(path: str, train_root: str, wnids: Sequence[str],
                          per_class: int, seed: int) -> FrozenSet[str]:
    """The held-out entries: read from ``path``, or drawn and written there
    (atomically) when it does not exist yet."""
    if osp.isfile(path):
        return read_holdout_file(path, per_class, seed)
    entries = draw_holdout(train_root, wnids, per_class, seed)
    tmp = f'{path}.{os.getpid()}.tmp'
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(HEADER.format(k=per_class, s=seed) + '\n')
            f.writelines(e + '\n' for e in entries)
        os.replace(tmp, path)
    except OSError as err:
        raise OSError(f'ImageNet hold-out: cannot write the split file '
                      f'{path} ({err.strerror}); set holdout_file to a '
                      f'writable path.') from None
    return frozenset(entries)


def check_holdout_args(per_class: int, seed: int,
                       holdout_file: Optional[str]) -> None:
    """One-line errors for bad hold-out arguments."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) \
            or per_class < 1:
        raise ValueError(f'ImageNetFolder: holdout_per_class must be an int '
                         f'>= 1, got {per_class!r}.')
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f'ImageNetFolder: holdout_seed must be an int, got '
                         f'{seed!r}.')
    if holdout_file is not None and not isinstance(holdout_file, str):
        raise ValueError(f'ImageNetFolder: holdout_file must be a path or '
                         f'None, got {holdout_file!r}.')
