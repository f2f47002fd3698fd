"""``ImageNetSketch``: ImageNet-Sketch (``sketch/<wnid>/*``, 1000 classes)."""
from __future__ import annotations

from typing import Any, Dict, List

from drm_mm.datasets.classnames import imagenet_classnames, imagenet_wnids
from drm_mm.datasets.imagenet_base import ImageNetFolderBase
from drm_mm.registry import DATASETS


@DATASETS.register_module()
class ImageNetSketch(ImageNetFolderBase):
    """ImageNet-Sketch, 50 889 sketches, 1000-way labels (sorted-wnid order).

    Reads ``<data_root>/sketch/<wnid>/``. See
    :class:`~drm_mm.datasets.imagenet_base.ImageNetFolderBase`.
    """

    DEFAULT_FOLDER = 'sketch'
    DOWNLOAD_HINT = ('Download ImageNet-Sketch (see '
                     'https://github.com/HaohanWang/ImageNet-Sketch) and '
                     'extract it so that <data_root>/sketch/<wnid>/ exist.')

    def expected_folders(self) -> List[str]:
        return list(imagenet_wnids())

    def class_metainfo(self) -> Dict[str, Any]:
        return dict(classes=tuple(imagenet_classnames()))
