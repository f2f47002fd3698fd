"""``ImageNetA``: natural adversarial examples, ``imagenet-a/<wnid>/*``."""
from __future__ import annotations

from drm_mm.datasets.imagenet_subset_base import ImageNetSubsetBase
from drm_mm.registry import DATASETS


@DATASETS.register_module()
class ImageNetA(ImageNetSubsetBase):
    """ImageNet-A, 7 500 adversarially filtered images of 200 ImageNet classes.

    ``gt_label`` = position in the 200-class subset; ``metainfo``:
    ``classes`` (200 names), ``class_subset`` (their ImageNet-1k indices).
    See :class:`~drm_mm.datasets.imagenet_base.ImageNetFolderBase`.
    """

    SUBSET = 'imagenet_a'
    DEFAULT_FOLDER = 'imagenet-a'
    DOWNLOAD_HINT = ('Download imagenet-a.tar (see '
                     'https://github.com/hendrycks/natural-adv-examples) and '
                     'extract it into data_root.')
