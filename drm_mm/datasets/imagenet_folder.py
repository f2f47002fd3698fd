"""``ImageNetFolder``: ImageNet-1k in folders, ``<split>/<wnid>/*.JPEG``.

Named ``ImageNetFolder`` to avoid clashing with MMPretrain's ``ImageNet``.
Labels follow the standard sorted-wnid order of the project file
``class_names/imagenet_wnids.txt``; class names are open_clip's. Splits
``train_fit`` / ``train_holdout`` divide ``train/`` into a training part
and a fixed held-out part for model selection
(:mod:`drm_mm.datasets.imagenet_holdout`).
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from drm_mm.datasets.classnames import imagenet_classnames, imagenet_wnids
from drm_mm.datasets.imagenet_base import ImageNetFolderBase
from drm_mm.datasets.imagenet_holdout import (check_holdout_args,
                                              default_holdout_file,
                                              load_or_write_holdout)
from drm_mm.registry import DATASETS

IMAGENET_SPLITS = ('train', 'val', 'train_fit', 'train_holdout')
HOLDOUT_SPLITS = ('train_fit', 'train_holdout')


@DATASETS.register_module()
class ImageNetFolder(ImageNetFolderBase):
    """ImageNet-1k ``train`` or ``val`` (val sorted into wnid folders), or
    the two parts of ``train`` split for model selection.

    Args:
        data_root: folder holding ``train/`` and ``val/`` (default
            ``data/imagenet``).
        split: ``'train'``, ``'val'``, ``'train_fit'`` (train without the
            held-out images) or ``'train_holdout'`` (the held-out images);
            the folder read is ``<data_root>/<split>`` (``train`` for the
            last two) unless ``folder`` is given.
        holdout_per_class: images per class held out of ``train``.
        holdout_seed: seed of the per-class draw.
        holdout_file: the split file (written on first use, read after);
            default ``<data_root>/train_holdout_<k>pc_seed<s>.txt``.
        test_mode: default ``split not in ('train', 'train_fit')``.
        **kwargs: see :class:`ImageNetFolderBase`.
    """

    DEFAULT_ROOT = 'data/imagenet'
    DOWNLOAD_HINT = ('Download ILSVRC2012 from https://image-net.org and '
                     'extract train/ and val/ with one folder per wnid (the '
                     'val images sorted into class folders).')

    def __init__(self,
                 data_root: str = DEFAULT_ROOT,
                 split: str = 'val',
                 folder: Optional[str] = None,
                 pipeline: Sequence = (),
                 holdout_per_class: int = 10,
                 holdout_seed: int = 0,
                 holdout_file: Optional[str] = None,
                 test_mode: Optional[bool] = None,
                 **kwargs: Any) -> None:
        if split not in IMAGENET_SPLITS:
            raise ValueError(f'ImageNetFolder: unknown split {split!r}; valid '
                             f'splits are {", ".join(IMAGENET_SPLITS)}.')
        check_holdout_args(holdout_per_class, holdout_seed, holdout_file)
        self.split = split
        self.holdout_per_class = holdout_per_class
        self.holdout_seed = holdout_seed
        self.holdout_file = holdout_file
        if test_mode is None:
            test_mode = split not in ('train', 'train_fit')
        if folder is None:
            folder = 'train' if split in HOLDOUT_SPLITS else split
        super().__init__(data_root=data_root, folder=folder,
                         pipeline=pipeline, test_mode=test_mode, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if self.split not in HOLDOUT_SPLITS:
            return data_list
        path = self.holdout_file or default_holdout_file(
            self.data_root, self.holdout_per_class, self.holdout_seed)
        held = load_or_write_holdout(path, self.image_root,
                                     self.expected_folders(),
                                     self.holdout_per_class,
                                     self.holdout_seed)
        keep = self.split == 'train_holdout'

        def entry(info: dict) -> str:
            return '/'.join(info['img_path'].split(osp.sep)[-2:])

        present = {entry(d) for d in data_list}
        stale = sorted(held - present)
        if stale:
            raise ValueError(
                f'ImageNetFolder: the split file {path} lists {len(stale)} '
                f'image(s) missing under {self.image_root} (first: '
                f'{stale[:3]}); restore them or delete the split file to '
                f'redraw (checkpoints selected on the old split are then not '
                f'comparable).')
        return [d for d in data_list if (entry(d) in held) == keep]

    def expected_folders(self) -> List[str]:
        return list(imagenet_wnids())

    def class_metainfo(self) -> Dict[str, Any]:
        return dict(classes=tuple(imagenet_classnames()))
