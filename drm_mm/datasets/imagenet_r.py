"""``ImageNetR``: ImageNet-Rendition (200 classes, ``imagenet-r/<wnid>/*``)."""
from __future__ import annotations

from drm_mm.datasets.imagenet_subset_base import ImageNetSubsetBase
from drm_mm.registry import DATASETS


@DATASETS.register_module()
class ImageNetR(ImageNetSubsetBase):
    """ImageNet-R, 30 000 renditions of 200 ImageNet classes.

    ``gt_label`` = position in the 200-class subset; ``metainfo``:
    ``classes`` (200 names), ``class_subset`` (their ImageNet-1k indices).
    See :class:`~drm_mm.datasets.imagenet_base.ImageNetFolderBase`.
    """

    SUBSET = 'imagenet_r'
    DEFAULT_FOLDER = 'imagenet-r'
    DOWNLOAD_HINT = ('Download imagenet-r.tar (see '
                     'https://github.com/hendrycks/imagenet-r) and extract it '
                     'into data_root.')
