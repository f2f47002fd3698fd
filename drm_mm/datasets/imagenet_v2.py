"""``ImageNetV2``: ImageNet-V2 matched-frequency, folders = class index."""
from __future__ import annotations

from typing import Any, Dict, List

from drm_mm.datasets.classnames import imagenet_classnames
from drm_mm.datasets.imagenet_base import ImageNetFolderBase
from drm_mm.registry import DATASETS


@DATASETS.register_module()
class ImageNetV2(ImageNetFolderBase):
    """ImageNet-V2 matched-frequency, 10 000 images, 1000-way labels.

    Reads ``<data_root>/imagenetv2-matched-frequency-format-val/<idx>/``,
    label = folder name (ImageNet-1k index). See
    :class:`~drm_mm.datasets.imagenet_base.ImageNetFolderBase`.
    """

    DEFAULT_FOLDER = 'imagenetv2-matched-frequency-format-val'
    ID_KIND = 'ImageNet class indices 0..999'
    DOWNLOAD_HINT = ('Download imagenetv2-matched-frequency.tar.gz (see '
                     'https://github.com/modestyachts/ImageNetV2) and '
                     'extract it into data_root.')

    def expected_folders(self) -> List[str]:
        return [str(i) for i in range(1000)]

    def class_metainfo(self) -> Dict[str, Any]:
        return dict(classes=tuple(imagenet_classnames()))
