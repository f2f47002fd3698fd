"""``ImageNetFolder``: ImageNet-1k in folders, ``<split>/<wnid>/*.JPEG``.

Named ``ImageNetFolder`` to avoid clashing with MMPretrain's ``ImageNet``.
Labels follow the standard sorted-wnid order of the project file
``class_names/imagenet_wnids.txt``; class names are open_clip's.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from drm_mm.datasets.classnames import imagenet_classnames, imagenet_wnids
from drm_mm.datasets.imagenet_base import ImageNetFolderBase
from drm_mm.registry import DATASETS

IMAGENET_SPLITS = ('train', 'val')


@DATASETS.register_module()
class ImageNetFolder(ImageNetFolderBase):
    """ImageNet-1k ``train`` or ``val`` (val sorted into wnid folders).

    Args:
        data_root: folder holding ``train/`` and ``val/`` (default
            ``data/imagenet``).
        split: ``'train'`` or ``'val'``; the folder read is
            ``<data_root>/<split>`` unless ``folder`` is given.
        test_mode: default ``split != 'train'``.
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
                 test_mode: Optional[bool] = None,
                 **kwargs: Any) -> None:
        if split not in IMAGENET_SPLITS:
            raise ValueError(f'ImageNetFolder: unknown split {split!r}; valid '
                             f'splits are {", ".join(IMAGENET_SPLITS)}.')
        self.split = split
        if test_mode is None:
            test_mode = split != 'train'
        super().__init__(data_root=data_root,
                         folder=split if folder is None else folder,
                         pipeline=pipeline, test_mode=test_mode, **kwargs)

    def expected_folders(self) -> List[str]:
        return list(imagenet_wnids())

    def class_metainfo(self) -> Dict[str, Any]:
        return dict(classes=tuple(imagenet_classnames()))
